//! Feature tensors of a split, kept on the CPU and batched onto the training device.

use crate::error::{Error, Result};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Log-mel features of a set of clips with their labels and recording devices.
#[derive(Debug)]
pub struct FeatureSet {
    /// [N, 1, F, T] float32 on the CPU.
    pub x: Tensor,
    /// Scene class per clip (`labels::CLASSES` index).
    pub y: Vec<i64>,
    /// Recording device per clip (`labels::DEVICES` index).
    pub device: Vec<i64>,
}

impl FeatureSet {
    /// Builds the set from per-clip matrices of one shape `[f, t]` (row-major).
    pub fn from_features(
        feats: &[crate::audio::frontend::Features],
        y: Vec<i64>,
        device: Vec<i64>,
    ) -> Result<FeatureSet> {
        let (f, t) = feats
            .first()
            .map(|x| (x.n_mels, x.n_frames))
            .unwrap_or((0, 0));
        if feats.iter().any(|x| x.n_mels != f || x.n_frames != t) {
            return Err(Error::msg(
                "clips produced feature matrices of different shapes (clips of different lengths?)",
            ));
        }
        let mut flat = Vec::with_capacity(feats.len() * f * t);
        for x in feats {
            flat.extend_from_slice(&x.data);
        }
        let x = Tensor::from_slice(&flat).reshape([feats.len() as i64, 1, f as i64, t as i64]);
        Ok(FeatureSet { x, y, device })
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Rows `idx`, moved to `device`: (x, y).
    pub fn batch(&self, idx: &[i64], device: Device) -> (Tensor, Tensor) {
        let i = Tensor::from_slice(idx);
        let x = self.x.index_select(0, &i).to_device(device);
        let y = Tensor::from_slice(&idx.iter().map(|&k| self.y[k as usize]).collect::<Vec<_>>())
            .to_device(device);
        (x, y)
    }

    /// Concatenation of several sets with the same feature shape.
    pub fn concat(parts: &[&FeatureSet]) -> FeatureSet {
        let xs: Vec<&Tensor> = parts.iter().map(|p| &p.x).collect();
        FeatureSet {
            x: Tensor::cat(&xs, 0),
            y: parts.iter().flat_map(|p| p.y.iter().copied()).collect(),
            device: parts
                .iter()
                .flat_map(|p| p.device.iter().copied())
                .collect(),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let y = Tensor::from_slice(&self.y);
        let d = Tensor::from_slice(&self.device);
        Tensor::write_safetensors(&[("x", &self.x), ("y", &y), ("device", &d)], path)?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<FeatureSet> {
        let tensors = Tensor::read_safetensors(path)?;
        let get = |name: &str| {
            tensors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| Error::file(path, format!("feature file lacks tensor `{name}`")))
        };
        let x = get("x")?.to_kind(Kind::Float);
        let y: Vec<i64> = get("y")?.try_into().map_err(Error::Torch)?;
        let device: Vec<i64> = get("device")?.try_into().map_err(Error::Torch)?;
        Ok(FeatureSet { x, y, device })
    }
}
