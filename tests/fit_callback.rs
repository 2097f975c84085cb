//! `train::fit_with`'s hooks (what `kind: prune` trains through): called in their order, able
//! to edit the weights after every optimizer step, and their state kept with each epoch
//! checkpoint and handed back to a resumed run.

use ascrepro::error::Result;
use ascrepro::models::{ModelConfig, ModelSpec, Net};
use ascrepro::recipe::{Select, TrainStage, TrainingSpec};
use ascrepro::train::{fit_with, FeatureSet, FitCallback, FitOptions};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn stage(epochs: usize) -> TrainStage {
    let spec: ModelSpec = serde_norway::from_str(
        "{arch: tfsepnet23, width: 4, norm: adaresnorm, dropout: 0.1, shuffle_groups: 1}",
    )
    .unwrap();
    let training: TrainingSpec = serde_norway::from_str(&format!(
        "epochs: {epochs}\nbatch_size: 8\noptimizer: {{kind: adam, lr: 0.005}}\n\
         schedule: {{kind: cosine}}\nvalidate_every: 0"
    ))
    .unwrap();
    TrainStage {
        id: "hooks".into(),
        label: "hooks".into(),
        model_key: "m".into(),
        model: ModelConfig::from_spec(&spec).unwrap(),
        model_of_init: false,
        training,
        init_from: None,
        init_classifier: None,
        select: Select::Last,
        split: None,
        split_csv: None,
        distill: None,
        seed: 5,
    }
}

/// 16 random clips: two steps of 8 per epoch.
fn data() -> FeatureSet {
    tch::manual_seed(1);
    FeatureSet {
        x: Tensor::randn([16, 1, 64, 32], (Kind::Float, Device::Cpu)),
        y: (0..16).map(|i| i % 10).collect(),
        device: vec![0; 16],
    }
}

/// Records the hooks' calls and keeps the variable `zeroed` at zero after every step.
struct Recorder {
    events: Vec<String>,
    steps: usize,
    zeroed: String,
}

impl FitCallback for Recorder {
    fn on_fit_start(
        &mut self,
        _vs: &VarStore,
        _net: &mut dyn Net,
        state: Option<&serde_json::Value>,
    ) -> Result<()> {
        let state = state.map_or("none".to_string(), |s| s.to_string());
        self.events.push(format!("start {state}"));
        Ok(())
    }

    fn on_epoch_start(&mut self, epoch: usize, _vs: &VarStore, _net: &mut dyn Net) -> Result<()> {
        self.events.push(format!("epoch {epoch}"));
        Ok(())
    }

    fn after_step(&mut self, vs: &VarStore, _net: &mut dyn Net) -> Result<()> {
        self.steps += 1;
        tch::no_grad(|| {
            let _ = vs.variables()[&self.zeroed].shallow_clone().zero_();
        });
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, _vs: &VarStore, _net: &mut dyn Net) -> Result<()> {
        self.events
            .push(format!("end {epoch} after {} steps", self.steps));
        Ok(())
    }

    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!(self.events.len()))
    }
}

fn run(epochs: usize, dir: &Path, set: &FeatureSet, zeroed: &str) -> (Vec<String>, VarStore) {
    let st = stage(epochs);
    let mut recorder = Recorder {
        events: Vec::new(),
        steps: 0,
        zeroed: zeroed.to_string(),
    };
    let opts = FitOptions {
        stage: &st,
        device: Device::Cpu,
        checkpoint_dir: dir,
        progress: None,
        audio: None,
        init: None,
        validation: None,
    };
    let fitted = fit_with(&opts, set, None, None, &mut recorder).unwrap();
    (recorder.events, fitted.vs)
}

#[test]
fn hooks_run_in_order_edit_weights_and_resume_with_their_state() {
    let tmp = tempfile::tempdir().unwrap();
    let set = data();
    // A conv weight (4-d): trained by every step unless the hook zeroes it.
    let probe = VarStore::new(Device::Cpu);
    ascrepro::models::build(&probe.root(), &stage(1).model).unwrap();
    let mut names: Vec<(String, Tensor)> = probe.variables().into_iter().collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let zeroed = names.iter().find(|(_, t)| t.dim() == 4).unwrap().0.clone();

    let (events, vs) = run(2, tmp.path(), &set, &zeroed);
    assert_eq!(
        events,
        [
            "start none",
            "epoch 0",
            "end 0 after 2 steps",
            "epoch 1",
            "end 1 after 4 steps"
        ]
    );
    let w = vs.variables()[&zeroed]
        .abs()
        .sum(Kind::Double)
        .double_value(&[]);
    assert_eq!(w, 0.0, "`{zeroed}` was trained after the hook zeroed it");

    // One more epoch from the same checkpoints: the state saved after epoch 2 comes back.
    let (events, _) = run(3, tmp.path(), &set, &zeroed);
    assert_eq!(events, ["start 5", "epoch 2", "end 2 after 2 steps"]);
}
