//! The command line: a thin layer over the library modules.

use crate::compress::complexity::{count, CountOptions};
use crate::data::{manifest::Manifest, synth};
use crate::error::{Error, Result};
use crate::report::site;
use crate::runner::{self, platform, DeviceChoice, ExecutorKind, RunOptions};
use ascrepro_results::record::{LIMIT_MACS, LIMIT_PARAM_BYTES};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

mod features;
mod model_args;
mod predict;

#[derive(Parser)]
#[command(
    name = "ascrepro",
    version,
    about = "Regenerates published results of low-complexity acoustic scene classification systems from recipes"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a recipe's profile end to end (cached by content) and writes its report.
    Run {
        /// Recipe YAML, e.g. recipes/cai2023_tfsepnet.yaml.
        recipe: PathBuf,
        /// `demo` (synthetic data, minutes on a CPU) or `paper` (the report's settings on real data).
        #[arg(long, default_value = "demo")]
        profile: String,
        /// Report directory [default: reports/<recipe id>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Stage cache [default: .cache/ascrepro]. With Slurm, on a filesystem the nodes share.
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Root of the real datasets [default: data].
        #[arg(long)]
        data_root: Option<PathBuf>,
        /// libtorch intra-op threads per stage; part of the platform identity of the numeric
        /// stages on the CPU (libtorch splits reductions by thread, so results are bit-identical
        /// only for equal counts). One is fastest for these small models.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Where tensors live: auto (the GPU when one is visible), cpu, or cuda. Part of the
        /// platform identity: a GPU run is a different platform.
        #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
        device: DeviceChoice,
        /// Who computes the stages: local (this machine) or slurm (one batch job per stage).
        #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
        executor: ExecutorKind,
        /// Local executor: stages computed at once [default: the cores divided by --threads].
        /// Scheduling only: the report is byte-identical for every value.
        #[arg(long)]
        jobs: Option<usize>,
        /// Slurm executor: submit the jobs and return; follow them with `ascrepro status`, and
        /// run the same command again to write the report once they are done.
        #[arg(long)]
        detach: bool,
        /// Slurm executor: the cache is on a filesystem every node shares, though this machine
        /// does not recognise it as a network filesystem.
        #[arg(long)]
        shared_fs: bool,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Computes one stage of a run plan (`<cache>/runs/<run>/plan.json`, written by `run`)
    /// into the cache; refuses if its inputs are not there. What every executor's jobs run.
    Stage {
        /// The plan file or its run directory.
        plan: PathBuf,
        /// The stage, as `kind:id` (e.g. `train:teacher`) or its index in the plan.
        #[arg(long)]
        node: String,
        #[arg(long, short)]
        quiet: bool,
    },
    /// The state of a run's stage jobs (cache and Slurm), by its run directory or plan file.
    Status { run: PathBuf },
    /// Validates a recipe's profile and prints its stage graph (each stage's kind, inputs,
    /// identity, and whether it is cached) without computing anything.
    Plan {
        recipe: PathBuf,
        #[arg(long, default_value = "demo")]
        profile: String,
        /// Report directory the report stage would write [default: reports/<recipe id>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Stage cache [default: .cache/ascrepro].
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Root of the real datasets [default: data].
        #[arg(long)]
        data_root: Option<PathBuf>,
        /// The device the identities are computed for (see `run --device`).
        #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
        device: DeviceChoice,
        /// Show what would be recomputed after editing this source file (repeatable), e.g.
        /// `--edited templates/index.html`.
        #[arg(long, value_name = "PATH")]
        edited: Vec<String>,
    },
    /// Writes a stage's logits on every training clip (clip filename + 10 logits, CSV or
    /// parquet by the extension), computing only what that stage needs, and prints the file's
    /// SHA-256: the teacher file a recipe names as `teacher: {kind: logits, path, sha256}`.
    Logits {
        recipe: PathBuf,
        /// The stage whose model's logits are written.
        #[arg(long)]
        stage: String,
        #[arg(long, default_value = "demo")]
        profile: String,
        /// Output file (`.csv` or `.parquet`).
        #[arg(long)]
        out: PathBuf,
        /// Stage cache [default: .cache/ascrepro].
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Root of the real datasets [default: data].
        #[arg(long)]
        data_root: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Creates or verifies a data manifest (every file's path, size and SHA-256).
    Manifest {
        #[command(subcommand)]
        action: ManifestAction,
    },
    /// Generates the synthetic TAU-like dataset (44.1 kHz 24-bit WAV, meta.csv, split CSVs, device IRs).
    Synth {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 2022)]
        seed: u64,
    },
    /// Generates the synthetic multi-label set in AudioSet's layout (class_labels_indices.csv,
    /// balanced_train_segments.csv, eval_segments.csv, audio/<YTID>.wav): the demo stand-in for
    /// AudioSet pre-training.
    SynthMultilabel {
        #[arg(long)]
        out: PathBuf,
        /// Clips in balanced_train_segments.csv.
        #[arg(long, default_value_t = synth::MultiLabelSynthConfig::default().clips)]
        clips: usize,
        /// Clips in eval_segments.csv.
        #[arg(long, default_value_t = synth::MultiLabelSynthConfig::default().eval_clips)]
        eval_clips: usize,
        #[arg(long, default_value_t = synth::MultiLabelSynthConfig::default().seed)]
        seed: u64,
    },
    /// Re-checks a report directory against its SHA256SUMS; given a site root (a directory of
    /// reports, e.g. `reports`), every report in it, and that its index.html and
    /// SHA256SUMS.site are what `ascrepro site` writes now.
    Verify { dir: PathBuf },
    /// Writes the site index over every report directory in DIR: DIR/index.html (one row per
    /// report: headline published vs reproduced, findings, checksum status, links) and
    /// DIR/SHA256SUMS.site. `ascrepro run` rewrites it after writing a report into `reports/`.
    Site {
        #[arg(default_value = "reports")]
        dir: PathBuf,
    },
    /// Counts parameters and MACs of a model (torchinfo's convention) against the challenge limits.
    Complexity {
        /// Architecture, e.g. tfsepnet23.
        model: String,
        #[command(flatten)]
        options: model_args::ModelArgs,
        /// Input shape CxFxT, e.g. 1x128x44.
        #[arg(long)]
        input: String,
        /// Count after folding every BatchNorm into the conv before it.
        #[arg(long)]
        fold_bn: bool,
        /// Count after merging RepConv branches (the inference graph).
        #[arg(long)]
        reparam: bool,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Scene logits and labels for WAV files, from ascrepro weights (.safetensors) or a released
    /// PyTorch checkpoint (.ckpt/.pth, with --model and its options).
    Predict(predict::PredictArgs),
    /// The log-mel features of one WAV file, written as a NumPy .npy array (mel bands x frames).
    Features(features::FeaturesArgs),
}

#[derive(Subcommand)]
enum ManifestAction {
    /// Hashes every file under DATA_DIR into a manifest.
    Create {
        data_dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Dataset name recorded in the manifest [default: the directory's name].
        #[arg(long)]
        dataset: Option<String>,
        #[arg(long, default_value = "tau2022-mobile")]
        layout: String,
        /// Store only the file count and a hash of the sorted file list (for very large datasets).
        #[arg(long)]
        summary: bool,
    },
    /// Checks every file under --root against the manifest; names the first that differs.
    Verify {
        manifest: PathBuf,
        #[arg(long)]
        root: PathBuf,
    },
}

/// Parses the command line and runs it; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn execute(cmd: Command) -> Result<()> {
    match cmd {
        Command::Predict(args) => predict::run(args),
        Command::Features(args) => features::run(args),
        Command::Run {
            recipe,
            profile,
            out,
            cache,
            data_root,
            threads,
            device,
            executor,
            jobs,
            detach,
            shared_fs,
            quiet,
        } => {
            check_threads(threads)?;
            if jobs == Some(0) {
                return Err(Error::msg("--jobs must be at least 1"));
            }
            if executor != ExecutorKind::Slurm && (detach || shared_fs) {
                return Err(Error::msg(
                    "--detach and --shared-fs are for --executor slurm",
                ));
            }
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let opts = RunOptions {
                out,
                cache,
                data_root,
                threads,
                device,
                executor,
                jobs: jobs.unwrap_or((cores / threads).max(1)),
                detach,
                shared_fs,
                quiet,
                ..RunOptions::new(recipe, &profile)
            };
            if detach {
                let s = runner::submit(&opts)?;
                println!(
                    "{} job(s) queued; follow them with `ascrepro status {}`",
                    s.jobs.len(),
                    s.run_dir.display()
                );
                for (label, id) in &s.jobs {
                    println!("  {label}: job {id}");
                }
            } else {
                runner::run(&opts)?;
            }
            Ok(())
        }
        Command::Stage { plan, node, quiet } => {
            runner::compute_stage(&plan, &node, quiet)?;
            Ok(())
        }
        Command::Status { run } => {
            print!("{}", runner::status(&run)?);
            Ok(())
        }
        Command::Logits {
            recipe,
            stage,
            profile,
            out,
            cache,
            data_root,
            threads,
            quiet,
        } => {
            check_threads(threads)?;
            // Refused before the training it may need, not after.
            crate::fsio::check_output(&out, &[&recipe])?;
            let sha256 = runner::export_logits(
                &RunOptions {
                    cache,
                    data_root,
                    threads,
                    quiet,
                    ..RunOptions::new(recipe, &profile)
                },
                &stage,
                &out,
            )?;
            println!("{sha256}  {}", out.display());
            Ok(())
        }
        Command::Plan {
            recipe,
            profile,
            out,
            cache,
            data_root,
            device,
            edited,
        } => {
            let mut code = runner::CodeIndex::embedded();
            for path in &edited {
                code = code.edited(path)?;
            }
            let opts = RunOptions {
                out,
                cache,
                data_root,
                device,
                code,
                ..RunOptions::new(recipe, &profile)
            };
            let nodes = runner::plan(&opts)?;
            print!("{}", runner::executor::format_plan(&nodes));
            if edited.is_empty() {
                // Best effort: listing works on a read-only cache too.
                match runner::write_plan(&opts) {
                    Ok(file) => println!("run plan: {}", file.display()),
                    Err(e) => eprintln!("note: the run plan was not written: {e}"),
                }
            }
            Ok(())
        }
        Command::Manifest {
            action:
                ManifestAction::Create {
                    data_dir,
                    out,
                    dataset,
                    layout,
                    summary,
                },
        } => {
            let name = dataset.unwrap_or_else(|| {
                data_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "dataset".into())
            });
            // Refused before hashing, not after.
            Manifest::check_output(&out, &data_dir)?;
            let full = Manifest::create(&data_dir, &name, &layout)?;
            let m = if summary {
                full.summarized()
            } else {
                full.clone()
            };
            m.save_outside(&out, &data_dir, &full.files)?;
            println!(
                "{}: {} files, manifest hash {}",
                out.display(),
                m.file_count(),
                m.hash()
            );
            Ok(())
        }
        Command::Manifest {
            action: ManifestAction::Verify { manifest, root },
        } => {
            let m = Manifest::load(&manifest)?;
            m.verify(&root)?;
            println!("{}: all {} files match", root.display(), m.file_count());
            Ok(())
        }
        Command::Synth { out, seed } => {
            let cfg = synth::SynthConfig {
                seed,
                ..Default::default()
            };
            synth::generate(&cfg, &out, None)?;
            println!("{}: synthetic dataset written (seed {seed})", out.display());
            Ok(())
        }
        Command::SynthMultilabel {
            out,
            clips,
            eval_clips,
            seed,
        } => {
            let cfg = synth::MultiLabelSynthConfig {
                seed,
                clips,
                eval_clips,
                ..Default::default()
            };
            synth::generate_multilabel(&cfg, &out, None)?;
            println!(
                "{}: synthetic multi-label set written ({} training and {} evaluation clips, seed {})",
                out.display(),
                cfg.clips,
                cfg.eval_clips,
                cfg.seed
            );
            Ok(())
        }
        Command::Verify { dir } => {
            match site::verify_dir(&dir)? {
                site::Verified::Report => {
                    println!("{}: every file matches SHA256SUMS", dir.display())
                }
                site::Verified::Site { reports } => println!(
                    "{}: all {reports} report(s) match their SHA256SUMS; {} and {} are current",
                    dir.display(),
                    site::INDEX,
                    site::SITE_SUMS
                ),
            }
            Ok(())
        }
        Command::Site { dir } => {
            let written = site::write(&dir)?;
            println!(
                "{}: {} report(s) listed",
                written.index.display(),
                written.reports
            );
            for (report, why) in &written.failing {
                eprintln!("note: {report} fails its checksums: {why}");
            }
            Ok(())
        }
        Command::Complexity {
            model,
            options,
            input,
            fold_bn,
            reparam,
            json,
        } => {
            platform::pin(1, platform::DeviceChoice::Cpu, true)?;
            let mut spec = options.spec(&model);
            if spec.norm.as_deref() == Some("resnorm") && spec.resnorm_lambda.is_none() {
                // ResNorm's lambda does not change the count; 0.1 is the reports' value.
                spec.resnorm_lambda = Some(0.1);
            }
            let cfg = model_args::config(&spec)?;
            let shape = parse_shape(&input)?;
            let c = count(&cfg, shape, &CountOptions { fold_bn, reparam })?;
            if json {
                let v = serde_json::json!({
                    "model": cfg.describe(),
                    "input": c.input,
                    "params": c.params,
                    "macs": c.macs,
                    "param_bytes": {"fp32": c.param_bytes(32), "fp16": c.param_bytes(16), "int8": c.param_bytes(8)},
                    "layers": c.layers,
                });
                println!("{v}");
            } else {
                print_complexity(&cfg.describe(), &c);
            }
            Ok(())
        }
    }
}

/// Most `--threads` accepted. libtorch starts one OpenMP thread per count, so a mistyped
/// 100000 would hang the machine; the bound is fixed, not derived from this machine's CPUs,
/// because reproducing a run needs its exact count, which may exceed the cores at hand.
const MAX_THREADS: usize = 256;

fn check_threads(threads: usize) -> Result<()> {
    if (1..=MAX_THREADS).contains(&threads) {
        return Ok(());
    }
    Err(Error::msg(format!(
        "--threads {threads}: give a count from 1 to {MAX_THREADS} (results are bit-identical \
         only for equal counts: use the count of the run you reproduce, or 1)"
    )))
}

fn parse_shape(s: &str) -> Result<[i64; 3]> {
    let parts: Vec<i64> = s
        .split('x')
        .map(|p| p.trim().parse::<i64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::msg(format!("--input `{s}`: expected CxFxT, e.g. 1x128x44")))?;
    match parts.as_slice() {
        [c, f, t] if *c > 0 && *f > 0 && *t > 0 => Ok([*c, *f, *t]),
        _ => Err(Error::msg(format!(
            "--input `{s}`: expected three positive sizes CxFxT, e.g. 1x128x44"
        ))),
    }
}

fn print_complexity(name: &str, c: &ascrepro_results::record::Complexity) {
    println!("{name}, input {:?}", c.input);
    println!(
        "{:<40} {:<14} {:>16} {:>16} {:>10} {:>12}",
        "layer", "kind", "input", "output", "params", "MACs"
    );
    for l in &c.layers {
        println!(
            "{:<40} {:<14} {:>16} {:>16} {:>10} {:>12}",
            l.name,
            l.kind,
            format!("{:?}", l.input),
            format!("{:?}", l.output),
            l.params,
            l.macs
        );
    }
    println!("total params {}  MACs {}", c.params, c.macs);
    for (label, bits) in [("fp32", 32), ("fp16", 16), ("int8", 8)] {
        let b = c.param_bytes(bits);
        println!(
            "  parameter memory at {label}: {b} bytes ({:.1} kB) {}",
            b as f64 / 1000.0,
            if b <= LIMIT_PARAM_BYTES {
                "within 128 kB"
            } else {
                "OVER 128 kB"
            }
        );
    }
    println!(
        "  MACs {} {}",
        c.macs,
        if c.macs <= LIMIT_MACS {
            "within 30 M"
        } else {
            "OVER 30 M"
        }
    );
}
