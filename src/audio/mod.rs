//! Audio: WAV decoding, resampling, front ends (log-mel features) and augmentations.

pub mod conv;
pub mod wav;
