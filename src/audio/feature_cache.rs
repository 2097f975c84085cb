//! Per-clip feature cache, keyed by (front end, audio file content): a recipe's later stages,
//! other recipes and other profiles that read the same clips through the same front end reuse
//! one extraction, whatever stage or dataset listing they come from.
//!
//! Layout: `<root>/<front-end key>/<aa>/<sha256 of the audio file>.f32`, where the front-end key
//! is a hash of the front end's fingerprint and the WAV decoder's id (everything the features
//! depend on besides the audio bytes; `frontend.txt` beside the entries spells it out) and `aa`
//! the hash's first two hex digits. An entry holds a 52-byte header (magic, mel bands, frames,
//! channel count of the source file, SHA-256 checksum) and the f32 values, little-endian,
//! `[mel][frame]`. Entries are written to a temporary file and renamed into place; a reader
//! accepts one only if its size, header and checksum (over the key, the audio hash and the
//! values) all match, so a truncated, corrupt or misplaced entry is recomputed, never used.

use super::frontend::{Features, Frontend};
use crate::error::{Error, IoContext, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"ASCFEAT1";
const HEADER: usize = 8 + 4 + 4 + 2 + 2 + 32;

/// Features of one clip as stored: the values and how the file was decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedFeatures {
    pub features: Features,
    /// Channel count of the source file when it was mixed down to mono.
    pub mixed_from_channels: Option<u16>,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    Hit(CachedFeatures),
    Miss,
    /// An entry exists but cannot be trusted (the reason); it is to be recomputed.
    Corrupt(String),
}

/// The cache directory of one front end.
#[derive(Clone, Debug)]
pub struct FeatureCache {
    dir: PathBuf,
    key: String,
    n_mels: usize,
}

impl FeatureCache {
    /// The cache of `fe`'s features under `root` (created if needed).
    pub fn open(root: &Path, fe: &Frontend) -> Result<FeatureCache> {
        let identity = format!("{}\ndecoder={}\n", fe.fingerprint(), super::wav::DECODER_ID);
        let key = hex::encode(Sha256::digest(identity.as_bytes()))[..32].to_string();
        let dir = root.join(&key);
        std::fs::create_dir_all(&dir).at(&dir)?;
        let label = dir.join("frontend.txt");
        match std::fs::read_to_string(&label) {
            Ok(text) if text == identity => {}
            Ok(_) => {
                return Err(Error::file(
                    &label,
                    "feature cache directory belongs to another front end (hash collision or \
                     edited file); remove the directory",
                ))
            }
            Err(_) => write_atomically(&label, identity.as_bytes())?,
        }
        Ok(FeatureCache {
            dir,
            key,
            n_mels: fe.n_mels(),
        })
    }

    /// This front end's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, audio_sha256: &str) -> PathBuf {
        self.dir
            .join(&audio_sha256[..2])
            .join(format!("{audio_sha256}.f32"))
    }

    /// The entry of the audio file whose SHA-256 (lower-case hex) is `audio_sha256`.
    pub fn get(&self, audio_sha256: &str) -> Result<Lookup> {
        check_hash(audio_sha256)?;
        let path = self.entry_path(audio_sha256);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::Miss),
            Err(e) => return Ok(Lookup::Corrupt(format!("unreadable: {e}"))),
        };
        Ok(match self.decode(audio_sha256, &bytes) {
            Ok(entry) => Lookup::Hit(entry),
            Err(why) => Lookup::Corrupt(why),
        })
    }

    /// Stores `entry` for the audio file with SHA-256 `audio_sha256`, atomically.
    pub fn put(&self, audio_sha256: &str, entry: &CachedFeatures) -> Result<()> {
        check_hash(audio_sha256)?;
        let f = &entry.features;
        if f.n_mels != self.n_mels || f.data.len() != f.n_mels * f.n_frames {
            return Err(Error::msg(format!(
                "feature cache: {} x {} features with {} values do not fit a {}-band front end",
                f.n_mels,
                f.n_frames,
                f.data.len(),
                self.n_mels
            )));
        }
        let mut bytes = Vec::with_capacity(HEADER + 4 * f.data.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(f.n_mels as u32).to_le_bytes());
        bytes.extend_from_slice(&(f.n_frames as u32).to_le_bytes());
        bytes.extend_from_slice(&entry.mixed_from_channels.unwrap_or(1).to_le_bytes());
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&[0; 32]);
        for v in &f.data {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let sum = self.checksum(audio_sha256, &bytes);
        bytes[20..HEADER].copy_from_slice(&sum);
        let path = self.entry_path(audio_sha256);
        let parent = path.parent().expect("entries live in a subdirectory");
        std::fs::create_dir_all(parent).at(parent)?;
        write_atomically(&path, &bytes)
    }

    /// SHA-256 over the front-end key, the audio hash, the header fields and the values.
    fn checksum(&self, audio_sha256: &str, bytes: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"ascrepro-features\0");
        h.update(self.key.as_bytes());
        h.update(audio_sha256.as_bytes());
        h.update(&bytes[..20]);
        h.update(&bytes[HEADER..]);
        h.finalize().into()
    }

    fn decode(
        &self,
        audio_sha256: &str,
        bytes: &[u8],
    ) -> std::result::Result<CachedFeatures, String> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err("not a feature cache entry (bad header)".into());
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let (n_mels, n_frames) = (u32_at(8) as usize, u32_at(12) as usize);
        let channels = u16::from_le_bytes([bytes[16], bytes[17]]);
        if n_mels != self.n_mels || channels == 0 {
            return Err(format!("header says {n_mels} bands, {channels} channels"));
        }
        let expected = n_mels
            .checked_mul(n_frames)
            .and_then(|n| n.checked_mul(4))
            .and_then(|n| n.checked_add(HEADER));
        if expected != Some(bytes.len()) {
            return Err(format!(
                "{} bytes for {n_mels} x {n_frames} values (truncated?)",
                bytes.len()
            ));
        }
        if self.checksum(audio_sha256, bytes)[..] != bytes[20..HEADER] {
            return Err("checksum mismatch".into());
        }
        let data = bytes[HEADER..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        Ok(CachedFeatures {
            features: Features {
                n_mels,
                n_frames,
                data,
            },
            mixed_from_channels: (channels > 1).then_some(channels),
        })
    }
}

/// Audio hashes name files: only 64 lower-case hex digits are accepted.
fn check_hash(sha256: &str) -> Result<()> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Ok(())
    } else {
        Err(Error::msg(format!(
            "feature cache: `{sha256}` is not a lower-case hex SHA-256"
        )))
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut out = crate::fsio::OutputFile::create(path, &[])?;
    out.file().write_all(bytes).at(out.temp_path())?;
    // Entries carry a checksum: a torn one is detected and recomputed.
    out.commit_unsynced()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::frontend::FrontendId;

    fn entry(n_frames: usize, channels: Option<u16>) -> CachedFeatures {
        CachedFeatures {
            features: Features {
                n_mels: 128,
                n_frames,
                data: (0..128 * n_frames).map(|i| i as f32 * 0.25 - 7.0).collect(),
            },
            mixed_from_channels: channels,
        }
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trips_bit_exactly_and_detects_damage() {
        let root = tempfile::tempdir().unwrap();
        let cache =
            FeatureCache::open(root.path(), &Frontend::authors(FrontendId::CpMel128)).unwrap();
        assert!(matches!(cache.get(SHA).unwrap(), Lookup::Miss));
        let e = entry(44, Some(2));
        cache.put(SHA, &e).unwrap();
        match cache.get(SHA).unwrap() {
            Lookup::Hit(got) => assert_eq!(got, e),
            other => panic!("{other:?}"),
        }
        let path = cache.entry_path(SHA);
        let good = std::fs::read(&path).unwrap();
        // A flipped bit in the values, a truncated file, a header from elsewhere.
        let mut flipped = good.clone();
        flipped[HEADER + 100] ^= 0x10;
        let truncated = good[..good.len() - 4].to_vec();
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        for damaged in [flipped, truncated, bad_magic, Vec::new()] {
            std::fs::write(&path, &damaged).unwrap();
            assert!(matches!(cache.get(SHA).unwrap(), Lookup::Corrupt(_)));
        }
        // An intact entry under another audio hash is not accepted either.
        let other = SHA.replace('0', "1");
        let moved = cache.entry_path(&other);
        std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
        std::fs::write(&moved, &good).unwrap();
        assert!(matches!(cache.get(&other).unwrap(), Lookup::Corrupt(_)));
    }

    #[test]
    fn front_ends_get_separate_directories_and_hashes_are_checked() {
        let root = tempfile::tempdir().unwrap();
        let a = FeatureCache::open(root.path(), &Frontend::authors(FrontendId::CpMel128)).unwrap();
        let b = FeatureCache::open(root.path(), &Frontend::authors(FrontendId::CpMel512)).unwrap();
        assert_ne!(a.dir(), b.dir());
        let again =
            FeatureCache::open(root.path(), &Frontend::authors(FrontendId::CpMel128)).unwrap();
        assert_eq!(a.dir(), again.dir());
        assert!(a.get("../../etc/passwd").is_err());
        assert!(a.get(&SHA.to_uppercase()).is_err());
        // Features of another front end's shape are refused.
        assert!(b.put(SHA, &entry(44, None)).is_err());
    }
}
