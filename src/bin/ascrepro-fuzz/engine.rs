//! The engine: a supervising parent feeds inputs to a child process (this binary, `child`
//! mode) that runs one reader under an address-space limit. The parent holds every input, so
//! whatever happens to the child (panic, abort, signal, out of memory, hang) names its culprit;
//! a failing input is saved as a regression case and the child is restarted.

use crate::hostile;
use crate::mutate;
use crate::readers::{self, Reader};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How a run is bounded and where it keeps things.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// Total inputs (replayed ones included); `None`: until `deadline`.
    pub iterations: Option<u64>,
    pub deadline: Option<Duration>,
    /// CPU seconds one input may take (wall clock: 10x that, at least 60 s: the machine may be busy).
    pub timeout: Duration,
    /// Address space the child may add to what it has once ready, in MiB.
    pub mem_mib: u64,
    /// `fuzz/`: `corpus/<reader>/`, `regressions/<reader>/`.
    pub fuzz_dir: PathBuf,
    /// Save failing inputs under `regressions/<reader>/`.
    pub save: bool,
    /// Print each failure as it happens.
    pub verbose: bool,
}

/// What one reader's run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub reader: &'static str,
    pub corpus: u64,
    pub regressions: u64,
    pub hostile: u64,
    pub mutants: u64,
    pub accepted: u64,
    pub failures: Vec<Failure>,
    pub seconds: f64,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub origin: String,
    pub symptom: String,
    pub saved: Option<PathBuf>,
}

impl Summary {
    pub fn inputs(&self) -> u64 {
        self.corpus + self.regressions + self.hostile + self.mutants
    }

    pub fn line(&self) -> String {
        format!(
            "fuzz {}: {} inputs ({} corpus + {} regressions + {} hostile + {} mutants), {} failures, {:.1} s ({:.0} inputs/s, {} accepted)",
            self.reader,
            self.inputs(),
            self.corpus,
            self.regressions,
            self.hostile,
            self.mutants,
            self.failures.len(),
            self.seconds,
            self.inputs() as f64 / self.seconds.max(1e-9),
            self.accepted,
        )
    }
}

/// One input's outcome in the child.
enum Outcome {
    Ok,
    /// The reader returned an error (its message is not needed).
    Err,
    Failed(String),
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Option<String>>,
    log: PathBuf,
}

fn child_env(cmd: &mut Command) {
    // One thread each (two cores are shared); few malloc arenas (each reserves address space).
    for (k, v) in [
        ("MALLOC_ARENA_MAX", "2"),
        ("OMP_NUM_THREADS", "1"),
        ("MKL_NUM_THREADS", "1"),
        ("RAYON_NUM_THREADS", "1"),
        ("POLARS_MAX_THREADS", "1"),
        ("RUST_BACKTRACE", "0"),
    ] {
        cmd.env(k, v);
    }
}

impl Worker {
    fn spawn(reader: Reader, scratch: &Path, opts: &Options) -> Result<Worker, String> {
        std::fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
        let log = scratch.join("child.log");
        let err = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(exe);
        cmd.arg("child")
            .arg(reader.name())
            .arg(scratch.join("work"))
            .arg(opts.mem_mib.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err));
        child_env(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the child: {e}"))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(Some(l)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send(None);
        });
        let mut w = Worker {
            child,
            stdin,
            lines: rx,
            log,
        };
        match w.lines.recv_timeout(Duration::from_secs(120)) {
            Ok(Some(l)) if l.starts_with("ready") => Ok(w),
            other => {
                let _ = w.child.kill();
                let _ = w.child.wait();
                Err(format!(
                    "the child did not start ({other:?}): {}",
                    tail(&w.log)
                ))
            }
        }
    }

    /// Runs one input; on a failure the child is gone (killed or dead) and must be replaced.
    fn run(&mut self, bytes: &[u8], timeout: Duration) -> Outcome {
        let started = Instant::now();
        let cpu0 = cpu_seconds(self.child.id());
        let sent = self
            .stdin
            .write_all(&(bytes.len() as u64).to_le_bytes())
            .and_then(|_| self.stdin.write_all(bytes))
            .and_then(|_| self.stdin.flush());
        let wall_limit = (timeout * 10).max(Duration::from_secs(60));
        loop {
            if sent.is_err() {
                return self.died();
            }
            match self.lines.recv_timeout(Duration::from_millis(20)) {
                Ok(Some(line)) => {
                    let (kind, msg) = line.split_once('\t').unwrap_or((&line, ""));
                    return match kind {
                        "ok" => Outcome::Ok,
                        "err" => Outcome::Err,
                        "panic" => {
                            self.kill();
                            Outcome::Failed(format!("panic: {msg}"))
                        }
                        _ => {
                            self.kill();
                            Outcome::Failed(format!("protocol: unexpected `{line}`"))
                        }
                    };
                }
                Ok(None) | Err(RecvTimeoutError::Disconnected) => return self.died(),
                Err(RecvTimeoutError::Timeout) => {
                    let cpu = cpu_seconds(self.child.id()) - cpu0;
                    let wall = started.elapsed();
                    if cpu > timeout.as_secs_f64() || wall > wall_limit {
                        self.kill();
                        let rss = "";
                        return Outcome::Failed(format!(
                            "hang: no answer after {cpu:.1} s CPU, {:.1} s wall{rss}",
                            wall.as_secs_f64()
                        ));
                    }
                }
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn died(&mut self) -> Outcome {
        let status = self.child.wait();
        let log = tail(&self.log);
        let how = match status {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                match s.signal() {
                    Some(sig) => format!("killed by signal {sig} ({})", signal_name(sig)),
                    None => format!("exited with {s}"),
                }
            }
            Err(e) => format!("lost ({e})"),
        };
        let why = interesting(&log);
        Outcome::Failed(if why.is_empty() {
            how
        } else {
            format!("{how}: {why}")
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGKILL => "SIGKILL",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        _ => "signal",
    }
}

/// The last 4 kB of the child's stderr.
fn tail(log: &Path) -> String {
    let bytes = std::fs::read(log).unwrap_or_default();
    let from = bytes.len().saturating_sub(4096);
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

/// The lines of a dead child's stderr that say why.
fn interesting(log: &str) -> String {
    let keep: Vec<String> = log
        .lines()
        .filter(|l| {
            l.contains("memory allocation of")
                || l.contains("overflowed its stack")
                || l.contains("panicked at")
                || l.contains("terminate called")
                || l.contains("what():")
                || l.contains("fatal runtime error")
                || l.contains("capacity overflow")
        })
        .map(without_thread_id)
        .collect();
    let mut s = keep.join(" | ");
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// `thread 'main' (1234) has ...` -> `thread 'main' has ...`: the same failure, the same text.
fn without_thread_id(line: &str) -> String {
    match line.find("' (") {
        Some(i) => match line[i + 3..].find(')') {
            Some(j) if line[i + 3..i + 3 + j].bytes().all(|b| b.is_ascii_digit()) => {
                format!("{}'{}", &line[..i], &line[i + 4 + j..])
            }
            _ => line.to_string(),
        },
        None => line.to_string(),
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the `(comm)`: state is field 3; utime 14, stime 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

/// Files of a directory, sorted by name (`.bin` and others; `.txt` notes left out).
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|x| x != "txt" && x != "md"))
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            Some((name, std::fs::read(&p).ok()?))
        })
        .collect();
    out.sort();
    out
}

pub fn sha16(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))[..16].to_string()
}

/// The failure's kind with numbers taken out: how failures are grouped.
pub fn signature(symptom: &str) -> String {
    let mut s = String::new();
    for c in symptom.chars() {
        match c {
            '0'..='9' | '.' if s.ends_with('#') => {}
            '0'..='9' => s.push('#'),
            c => s.push(c),
        }
    }
    s.truncate(120);
    s
}

/// Saved inputs larger than this are not committed (generated cases are regenerated anyway).
const SAVE_AT_MOST: usize = 256 << 10;
/// Inputs saved per failure signature (committed ones included).
const SAVE_PER_SIGNATURE: usize = 4;

/// Fuzzes one reader.
pub fn fuzz(reader: Reader, opts: &Options) -> Result<Summary, String> {
    let started = Instant::now();
    let name = reader.name();
    let corpus = files(&opts.fuzz_dir.join("corpus").join(name));
    if corpus.is_empty() {
        return Err(format!(
            "no corpus for `{name}` in {}",
            opts.fuzz_dir.join("corpus").join(name).display()
        ));
    }
    let reg_dir = opts.fuzz_dir.join("regressions").join(name);
    let regressions = files(&reg_dir);
    let hostile = hostile::cases(reader);
    // A saved hostile case keeps its oracle when it is replayed as a regression.
    let must_refuse: std::collections::HashSet<String> = hostile
        .iter()
        .filter(|c| c.must_refuse)
        .map(|c| sha16(&c.bytes))
        .collect();

    let scratch = tempfile::Builder::new()
        .prefix(&format!("ascrepro-fuzz-{name}-"))
        .tempdir()
        .map_err(|e| e.to_string())?;
    let mut worker: Option<Worker> = None;
    let mut summary = Summary {
        reader: name,
        ..Default::default()
    };
    // Inputs saved per failure signature: the committed ones count too.
    let mut saved_per_sig: BTreeMap<String, usize> = BTreeMap::new();
    for (file, _) in &regressions {
        let note = reg_dir.join(file).with_extension("txt");
        if let Some(first) = std::fs::read_to_string(note)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
        {
            *saved_per_sig.entry(signature(&first)).or_default() += 1;
        }
    }
    let failed_hashes = std::cell::RefCell::new(std::collections::HashSet::new());
    let mut seen = std::collections::HashSet::new();

    let mut one = |bytes: &[u8],
                   origin: String,
                   must_refuse: bool,
                   summary: &mut Summary|
     -> Result<bool, String> {
        if worker.is_none() {
            worker = Some(Worker::spawn(reader, scratch.path(), opts)?);
        }
        let w = worker.as_mut().expect("spawned");
        let symptom = match w.run(bytes, opts.timeout) {
            Outcome::Ok if must_refuse => Some("accepted an input it must refuse".to_string()),
            Outcome::Ok => {
                summary.accepted += 1;
                None
            }
            Outcome::Err => None,
            Outcome::Failed(why) => {
                worker = None;
                Some(why)
            }
        };
        let Some(symptom) = symptom else {
            return Ok(true);
        };
        let hash = sha16(bytes);
        let sig = signature(&symptom);
        let count = saved_per_sig.entry(sig).or_default();
        let mut saved = None;
        let path = reg_dir.join(format!("{hash}.bin"));
        if path.exists() {
            saved = Some(path);
        } else if opts.save && bytes.len() <= SAVE_AT_MOST && *count < SAVE_PER_SIGNATURE {
            // (At most SAVE_PER_SIGNATURE inputs of one kind of failure: mutants of one
            // failing input mostly fail the same way.)
            std::fs::create_dir_all(&reg_dir).map_err(|e| e.to_string())?;
            std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
            std::fs::write(
                reg_dir.join(format!("{hash}.txt")),
                format!("{symptom}\nfirst found as: {origin}\n"),
            )
            .map_err(|e| e.to_string())?;
            *count += 1;
            saved = Some(path);
        }
        failed_hashes.borrow_mut().insert(hash);
        let f = Failure {
            origin,
            symptom,
            saved,
        };
        if opts.verbose {
            eprintln!(
                "  FAIL {name} {}: {}{}",
                f.origin,
                f.symptom,
                match &f.saved {
                    Some(p) => format!(" [{}]", p.display()),
                    None => String::new(),
                }
            );
        }
        summary.failures.push(f);
        Ok(false)
    };

    // Replay: regressions first, then the corpus, then the generated hostile cases.
    let mut pool: Vec<Vec<u8>> = Vec::new();
    for (file, bytes) in &regressions {
        if !seen.insert(sha16(bytes)) {
            continue;
        }
        summary.regressions += 1;
        let refuse = must_refuse.contains(&sha16(bytes));
        if one(bytes, format!("regression {file}"), refuse, &mut summary)? {
            pool.push(bytes.clone());
        }
    }
    for (file, bytes) in &corpus {
        if !seen.insert(sha16(bytes)) {
            continue;
        }
        summary.corpus += 1;
        if one(bytes, format!("corpus {file}"), false, &mut summary)? {
            pool.push(bytes.clone());
        }
    }
    for case in &hostile {
        if !seen.insert(sha16(&case.bytes)) {
            continue;
        }
        summary.hostile += 1;
        let ok = one(
            &case.bytes,
            format!("hostile {}", case.name),
            case.must_refuse,
            &mut summary,
        )?;
        if ok && case.bytes.len() <= 64 << 10 {
            pool.push(case.bytes.clone());
        }
    }
    if pool.is_empty() {
        pool = corpus.iter().map(|(_, b)| b.clone()).collect();
    }
    let pool_refs: Vec<&[u8]> = pool.iter().map(Vec::as_slice).collect();

    // Mutants.
    let replayed = summary.inputs();
    let mut i = 0u64;
    loop {
        if let Some(n) = opts.iterations {
            if replayed + i >= n {
                break;
            }
        }
        if let Some(d) = opts.deadline {
            if started.elapsed() >= d {
                break;
            }
        }
        if opts.iterations.is_none() && opts.deadline.is_none() {
            break;
        }
        let mut rng = mutate::rng_for(name, opts.seed, i);
        let m = mutate::mutant(&mut rng, &pool_refs, reader.is_text(), reader.is_yaml());
        summary.mutants += 1;
        if !failed_hashes.borrow().contains(&sha16(&m)) {
            one(
                &m,
                format!("mutant seed {} iteration {i}", opts.seed),
                false,
                &mut summary,
            )?;
        }
        i += 1;
    }
    drop(worker);
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// `child READER SCRATCH MEM_MIB`: reads `u64 length + bytes` inputs from stdin until EOF and
/// answers each with one line (`ok`, `err\t<message>` or `panic\t<message>`) on what was stdout;
/// the reader's own stdout goes to stderr.
pub fn child(reader: Reader, scratch: &Path, mem_mib: u64) -> Result<(), String> {
    use std::os::fd::FromRawFd;
    // Answers on a private copy of stdout; fd 1 becomes stderr, so nothing a reader prints can
    // corrupt the protocol.
    let proto = unsafe {
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            return Err("dup".into());
        }
        std::fs::File::from_raw_fd(fd)
    };
    let mut proto = std::io::LineWriter::new(proto);
    let cx = readers::Context::new(scratch)?;
    // The bound: what the process has mapped now (libtorch and its pools included) plus mem_mib.
    let base = vm_size_bytes();
    let limit = base + (mem_mib << 20);
    unsafe {
        let as_limit = libc::rlimit {
            rlim_cur: limit as libc::rlim_t,
            rlim_max: limit as libc::rlim_t,
        };
        libc::setrlimit(libc::RLIMIT_AS, &as_limit);
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
    }
    writeln!(
        proto,
        "ready\tvm {} MiB, limit {} MiB",
        base >> 20,
        limit >> 20
    )
    .map_err(|e| e.to_string())?;
    let mut stdin = std::io::stdin().lock();
    loop {
        let mut len = [0u8; 8];
        if stdin.read_exact(&mut len).is_err() {
            return Ok(());
        }
        let mut bytes = vec![0u8; u64::from_le_bytes(len) as usize];
        stdin.read_exact(&mut bytes).map_err(|e| e.to_string())?;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            readers::run(reader, &cx, &bytes)
        }));
        let answer = match result {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(e)) => format!("err\t{}", one_line(&e)),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "(not a string)".into());
                format!("panic\t{}{}", one_line(&msg), last_panic_location())
            }
        };
        writeln!(proto, "{answer}").map_err(|e| e.to_string())?;
    }
}

fn one_line(s: &str) -> String {
    let mut s = s.replace(['\n', '\t'], " ");
    if s.len() > 400 {
        let mut cut = 400;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Where the last panic happened (in any thread: polars and rayon panic in their pools).
static PANIC_AT: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// Keeps the location of the last panic (printed with the message) and prints it as usual.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(l) = info.location() {
            if let Ok(mut p) = PANIC_AT.lock() {
                *p = format!(" (at {}:{})", l.file(), l.line());
            }
        }
        default(info);
    }));
}

fn last_panic_location() -> String {
    PANIC_AT.lock().map(|p| p.clone()).unwrap_or_default()
}

fn vm_size_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmSize:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb << 10)
}

/// `replay READER FILE`: one input in this process (no limits), for debugging.
pub fn replay(reader: Reader, file: &Path) -> Result<(), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cx = readers::Context::new(scratch.path())?;
    let t = Instant::now();
    let r = readers::run(reader, &cx, &bytes);
    println!("{:?} in {:.3} s", r, t.elapsed().as_secs_f64());
    Ok(())
}
