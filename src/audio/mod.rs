//! Audio: WAV decoding, resampling, front ends (log-mel features) and augmentations.

pub mod augment;
pub mod conv;
pub mod feature_cache;
pub mod features;
pub mod frontend;
pub mod npy;
pub mod resample;
pub mod wav;
