//! ascrepro-fuzz: a corpus-driven fuzz harness for every reader of outside bytes.
//!
//! ```text
//! ascrepro-fuzz [--reader NAME[,NAME...]|all] [--iterations N | --minutes M] [--seed S]
//!               [--timeout-s T] [--mem-mib M] [--jobs J] [--fuzz-dir DIR] [--no-save] [--quiet]
//! ascrepro-fuzz seed-corpus DIR      writes the seeds the project makes itself
//! ascrepro-fuzz replay READER FILE   runs one input in this process
//! ascrepro-fuzz list                 the readers
//! ```
//! Each reader's run replays its regression cases (`fuzz/regressions/<reader>/`), its corpus
//! (`fuzz/corpus/<reader>/`) and the generated hostile cases, then seeded mutants of those, in a
//! child process under a memory and a time bound; it prints one line per reader and exits 1 if
//! any input made a reader panic, abort, hang, exceed the memory bound or accept an input it
//! must refuse.

mod engine;
mod hostile;
mod mutate;
mod readers;
mod seeds;

use readers::Reader;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str =
    "usage: ascrepro-fuzz [--reader NAME[,NAME..]|all] [--iterations N | --minutes M] \
[--seed S] [--timeout-s T] [--mem-mib M] [--jobs J] [--fuzz-dir DIR] [--no-save] [--quiet]\n\
       ascrepro-fuzz seed-corpus DIR | replay READER FILE | list";

fn main() -> ExitCode {
    engine::install_panic_hook();
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ascrepro-fuzz: {e}");
            ExitCode::from(2)
        }
    }
}

fn reader_arg(name: &str) -> Result<Reader, String> {
    Reader::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Reader::ALL.iter().map(|r| r.name()).collect();
        format!("unknown reader `{name}` (known: {})", known.join(", "))
    })
}

fn real_main() -> Result<ExitCode, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("child") => {
            let [_, reader, scratch, mem] = args.as_slice() else {
                return Err(USAGE.into());
            };
            let mem = mem.parse().map_err(|_| USAGE.to_string())?;
            engine::child(reader_arg(reader)?, &PathBuf::from(scratch), mem)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some("seed-corpus") => {
            let [_, dir] = args.as_slice() else {
                return Err(USAGE.into());
            };
            seeds::write_all(&PathBuf::from(dir))?;
            return Ok(ExitCode::SUCCESS);
        }
        Some("replay") => {
            let [_, reader, file] = args.as_slice() else {
                return Err(USAGE.into());
            };
            engine::replay(reader_arg(reader)?, &PathBuf::from(file))?;
            return Ok(ExitCode::SUCCESS);
        }
        Some("list") => {
            for r in Reader::ALL {
                println!("{}", r.name());
            }
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }

    let mut readers: Vec<Reader> = Reader::ALL.to_vec();
    let mut opts = engine::Options {
        seed: 0,
        iterations: None,
        deadline: None,
        timeout: Duration::from_secs(3),
        mem_mib: 2048,
        fuzz_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz"),
        save: true,
        verbose: true,
    };
    let mut jobs = 1usize;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let num = |v: String| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        };
        match flag.as_str() {
            "--reader" | "--readers" => {
                let v = value()?;
                if v != "all" {
                    readers = v.split(',').map(reader_arg).collect::<Result<_, _>>()?;
                }
            }
            "--iterations" => opts.iterations = Some(num(value()?)? as u64),
            "--minutes" => opts.deadline = Some(Duration::from_secs_f64(num(value()?)? * 60.0)),
            "--seed" => opts.seed = num(value()?)? as u64,
            "--timeout-s" => opts.timeout = Duration::from_secs_f64(num(value()?)?),
            "--mem-mib" => opts.mem_mib = num(value()?)? as u64,
            "--jobs" => jobs = (num(value()?)? as usize).max(1),
            "--fuzz-dir" => opts.fuzz_dir = PathBuf::from(value()?),
            "--no-save" => opts.save = false,
            "--quiet" => opts.verbose = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if opts.iterations.is_none() && opts.deadline.is_none() {
        opts.iterations = Some(1000);
    }

    let queue = std::sync::Mutex::new(readers.into_iter());
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let Some(reader) = queue.lock().unwrap().next() else {
                    return;
                };
                match engine::fuzz(reader, &opts) {
                    Ok(summary) => {
                        println!("{}", summary.line());
                        if !summary.failures.is_empty() {
                            failed.store(true, std::sync::atomic::Ordering::SeqCst);
                            // One line per kind of failure (numbers aside): its count and
                            // first input.
                            let mut distinct = std::collections::BTreeMap::new();
                            for f in &summary.failures {
                                distinct
                                    .entry(engine::signature(&f.symptom))
                                    .or_insert((f, 0usize))
                                    .1 += 1;
                            }
                            for (f, n) in distinct.into_values() {
                                println!(
                                    "  failure {} (x{n}): {} <- {}{}",
                                    reader.name(),
                                    f.symptom,
                                    f.origin,
                                    f.saved
                                        .as_ref()
                                        .map(|p| format!(" [{}]", p.display()))
                                        .unwrap_or_default()
                                );
                            }
                        }
                    }
                    Err(e) => {
                        failed.store(true, std::sync::atomic::Ordering::SeqCst);
                        println!("fuzz {}: harness error: {e}", reader.name());
                    }
                }
            });
        }
    });
    Ok(if failed.into_inner() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
