//! Child processes in tests: never leaked, never silently blocking, always explained on failure.
//!
//! [`ChildGuard`] kills its child when dropped, so a failing test (a panic unwinds through the
//! guard) leaves no seeders or daemons behind. [`Proc`] adds two background threads that drain
//! the child's stdout and stderr line by line into a shared buffer: the child can never block on
//! a full pipe, a test can wait for a line such as `READY <port>` with a timeout, and every
//! error message carries the last lines the child printed. Each line is also echoed to the
//! test's stderr as `[name] line`, which the test harness shows only for failing tests.
//!
//! The child's stdin is a pipe held by the [`Proc`]; programs started with a "stop when stdin
//! closes" option (`lt_client.py --watch-stdin`, `transmission.py daemon --watch-stdin`) then
//! also stop when the whole test process dies without running destructors.

use std::io::{BufRead, BufReader, Read};
use std::ops::{Deref, DerefMut};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::wait::wait_until;

/// How many of a child's last output lines an error message quotes.
const TAIL_LINES: usize = 60;
/// How long to wait for a child's output pipes to close after the child exited (a grandchild
/// that inherited them can keep them open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How often exit status is polled.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// Owns a child process and kills it (SIGKILL, then reaps it) when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Takes ownership of a running child.
    pub fn new(child: Child) -> Self {
        ChildGuard { child }
    }

    /// Spawns `cmd` and guards the child; the error names the command.
    pub fn spawn(cmd: &mut Command) -> Result<Self, String> {
        cmd.spawn().map(Self::new).map_err(|e| format!("cannot start {cmd:?}: {e}"))
    }
}

impl Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One line a child printed.
struct Line {
    stderr: bool,
    text: String,
}

/// Output shared between the draining threads and the [`Proc`].
struct Output {
    state: Mutex<OutputState>,
    /// Notified on every new line and when a stream closes.
    changed: Condvar,
}

struct OutputState {
    lines: Vec<Line>,
    /// Output streams (stdout, stderr) not yet at end of file.
    open: u8,
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, OutputState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits on the condition variable until `deadline`; false once the deadline has passed.
    fn wait<'a>(&self, guard: MutexGuard<'a, OutputState>, deadline: Instant) -> Option<MutexGuard<'a, OutputState>> {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        let (guard, _) =
            self.changed.wait_timeout(guard, deadline - now).unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(guard)
    }
}

fn drain(name: String, stream: impl Read, stderr: bool, out: Arc<Output>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                eprintln!("[{name}{}] {text}", if stderr { " stderr" } else { "" });
                out.lock().lines.push(Line { stderr, text });
                out.changed.notify_all();
            }
        }
    }
    out.lock().open -= 1;
    out.changed.notify_all();
}

/// A child process whose output is captured line by line (see the module documentation).
/// Dropping it closes its stdin and kills it.
pub struct Proc {
    name: String,
    /// Declared before `child` so stdin is closed before the child is killed.
    stdin: Option<ChildStdin>,
    child: ChildGuard,
    out: Arc<Output>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` with piped stdin, stdout and stderr. `name` labels its output and errors.
    pub fn spawn(name: impl Into<String>, mut cmd: Command) -> Result<Proc, String> {
        let name = name.into();
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(&mut cmd).map_err(|e| format!("{name}: {e}"))?;
        let output =
            Arc::new(Output { state: Mutex::new(OutputState { lines: Vec::new(), open: 2 }), changed: Condvar::new() });
        let stdin = child.stdin.take();
        let (stdout, stderr) = match (child.stdout.take(), child.stderr.take()) {
            (Some(o), Some(e)) => (o, e),
            _ => return Err(format!("{name}: output pipes missing after spawn")),
        };
        for (stream, is_err) in [(Box::new(stdout) as Box<dyn Read + Send>, false), (Box::new(stderr), true)] {
            let (n, out) = (name.clone(), Arc::clone(&output));
            thread::Builder::new()
                .name(format!("drain-{name}"))
                .spawn(move || drain(n, stream, is_err, out))
                .map_err(|e| format!("{name}: cannot start an output thread: {e}"))?;
        }
        Ok(Proc { name, stdin, child, out: output, status: None })
    }

    /// The label given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operating system's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the child prints a stdout line starting with `prefix` (including lines it
    /// printed before this call) and returns that whole line. Fails when `timeout` passes or
    /// the child closes its stdout first; the error quotes the child's last lines.
    pub fn wait_for_line(&self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.out.lock();
        loop {
            if let Some(line) = state.lines.iter().find(|l| !l.stderr && l.text.starts_with(prefix)) {
                return Ok(line.text.clone());
            }
            if state.open == 0 {
                drop(state);
                return Err(self.explain(&format!("exited before printing a line starting with {prefix:?}")));
            }
            match self.out.wait(state, deadline) {
                Some(s) => state = s,
                None => {
                    return Err(self.explain(&format!("printed no line starting with {prefix:?} within {timeout:?}")));
                }
            }
        }
    }

    /// Every stdout line printed so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.out.lock().lines.iter().filter(|l| !l.stderr).map(|l| l.text.clone()).collect()
    }

    /// Everything printed so far, stdout and stderr interleaved as received; stderr lines
    /// start with `stderr: `.
    pub fn output(&self) -> String {
        render(&self.out.lock().lines)
    }

    /// `what` happened, followed by the exit status (if known) and the child's last lines.
    pub fn explain(&self, what: &str) -> String {
        let state = self.out.lock();
        let skip = state.lines.len().saturating_sub(TAIL_LINES);
        let status = match self.status {
            Some(s) => format!(" ({s})"),
            None => String::new(),
        };
        format!(
            "{}{status}: {what}\n--- last output of {} ---\n{}--- end ---",
            self.name,
            self.name,
            render(&state.lines[skip..])
        )
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>, String> {
        if self.status.is_none() {
            self.status = self.child.try_wait().map_err(|e| format!("{}: cannot poll: {e}", self.name))?;
        }
        Ok(self.status)
    }

    /// Waits up to `timeout` for the child to exit, then up to two more seconds for its output
    /// to be fully read. Returns the exit status; on timeout the child keeps running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let mut poll_error = None;
        let exited = wait_until(timeout, EXIT_POLL, || match self.try_status() {
            Ok(s) => s.is_some(),
            Err(e) => {
                poll_error = Some(e);
                true
            }
        });
        if let Some(e) = poll_error {
            return Err(e);
        }
        let Some(status) = self.status else {
            let why = exited.err().unwrap_or_default();
            return Err(self.explain(&format!("still running after {timeout:?} ({why})")));
        };
        let deadline = Instant::now() + DRAIN_GRACE;
        let mut state = self.out.lock();
        while state.open > 0 {
            match self.out.wait(state, deadline) {
                Some(s) => state = s,
                None => break,
            }
        }
        Ok(status)
    }

    /// Waits up to `timeout` for the child to exit and fails unless it exited with status 0.
    pub fn wait_success(&mut self, timeout: Duration) -> Result<(), String> {
        let status = self.wait_exit(timeout)?;
        if status.success() { Ok(()) } else { Err(self.explain("failed")) }
    }

    /// Writes `bytes` to the child's stdin.
    pub fn write_stdin(&mut self, bytes: &[u8]) -> Result<(), String> {
        use std::io::Write;
        let stdin = self.stdin.as_mut().ok_or_else(|| format!("{}: stdin is closed", self.name))?;
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{}: writing to its stdin: {e}", self.name))
    }

    /// Closes the child's stdin (programs that watch stdin then stop).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Asks the child to stop: closes its stdin and sends SIGTERM, waits up to `grace`, then
    /// kills it. Returns the exit status, or an error when it had to be killed.
    pub fn terminate(&mut self, grace: Duration) -> Result<ExitStatus, String> {
        self.close_stdin();
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        // `sh`'s built-in kill: std has no way to send SIGTERM, and /bin/kill may be absent.
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -TERM {} 2>/dev/null", self.id())])
            .stdin(Stdio::null())
            .status();
        match self.wait_exit(grace) {
            Ok(status) => Ok(status),
            Err(_) => {
                let _ = self.child.kill();
                let waited = self.child.wait();
                self.status = waited.ok();
                Err(self.explain(&format!("did not stop within {grace:?} of SIGTERM; killed")))
            }
        }
    }
}

/// A short name for a command's output: the program's file name, or for a Python script the
/// script's file name and its first argument (`lt_client.py create`).
fn label(cmd: &Command) -> String {
    let base = |s: &std::ffi::OsStr| {
        let s = s.to_string_lossy();
        s.rsplit('/').next().unwrap_or_default().to_owned()
    };
    let program = base(cmd.get_program());
    let mut args = cmd.get_args();
    match (program.starts_with("python"), args.next(), args.next()) {
        (true, Some(script), Some(sub)) => format!("{} {}", base(script), sub.to_string_lossy()),
        (true, Some(script), None) => base(script),
        _ => program,
    }
}

fn render(lines: &[Line]) -> String {
    let mut s = String::new();
    for l in lines {
        if l.stderr {
            s.push_str("stderr: ");
        }
        s.push_str(&l.text);
        s.push('\n');
    }
    s
}

/// What a finished command printed, see [`run_captured`].
#[derive(Debug, Clone)]
pub struct Captured {
    /// How it exited.
    pub status: ExitStatus,
    /// Its stdout, one `\n` after each line.
    pub stdout: String,
    /// Its stderr, one `\n` after each line.
    pub stderr: String,
    /// The command, for messages.
    pub command: String,
}

impl Captured {
    /// `Ok(self)` when the command exited with status 0; otherwise an error with its output.
    pub fn ok(self) -> Result<Self, String> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(format!(
                "{} failed ({})\n--- stdout ---\n{}--- stderr ---\n{}--- end ---",
                self.command, self.status, self.stdout, self.stderr
            ))
        }
    }
}

/// Runs `cmd` to completion with stdin closed, waiting at most `timeout`; the child is killed
/// if it takes longer. Any exit status is returned as `Ok`; use [`Captured::ok`] to require
/// success.
pub fn run_captured(cmd: Command, timeout: Duration) -> Result<Captured, String> {
    let command = format!("{cmd:?}");
    let mut proc = Proc::spawn(label(&cmd), cmd)?;
    proc.close_stdin();
    let status = proc.wait_exit(timeout).map_err(|e| format!("{command}: {e}"))?;
    let state = proc.out.lock();
    let pick = |stderr: bool| {
        state.lines.iter().filter(|l| l.stderr == stderr).fold(String::new(), |mut s, l| {
            s.push_str(&l.text);
            s.push('\n');
            s
        })
    };
    Ok(Captured { status, stdout: pick(false), stderr: pick(true), command })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn waits_for_a_line_and_keeps_earlier_ones() {
        let mut p = Proc::spawn("t", sh("echo one; echo err >&2; echo 'READY 42'; exec cat")).expect("spawn");
        assert_eq!(p.wait_for_line("READY ", Duration::from_secs(10)).expect("ready"), "READY 42");
        assert_eq!(p.wait_for_line("one", Duration::from_secs(1)).expect("earlier"), "one");
        assert_eq!(p.stdout_lines(), vec!["one", "READY 42"]);
        // `cat` exits when its stdin closes.
        p.close_stdin();
        assert!(p.wait_exit(Duration::from_secs(10)).expect("exits").success());
        assert!(p.output().contains("stderr: err"));
    }

    #[test]
    fn missing_line_times_out_or_reports_exit() {
        let p = Proc::spawn("sleeper", sh("echo hello; exec sleep 30")).expect("spawn");
        let start = Instant::now();
        let err = p.wait_for_line("READY", Duration::from_millis(200)).expect_err("no line");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(err.contains("within") && err.contains("hello"), "{err}");
        drop(p); // kills the sleep

        let p = Proc::spawn("quitter", sh("echo bye; exit 3")).expect("spawn");
        let err = p.wait_for_line("READY", Duration::from_secs(10)).expect_err("exited");
        assert!(err.contains("exited before"), "{err}");
    }

    #[test]
    fn terminate_and_exit_status() {
        let mut p = Proc::spawn("sleeper", sh("exec sleep 30")).expect("spawn");
        let start = Instant::now();
        let status = p.terminate(Duration::from_secs(10)).expect("stops on SIGTERM");
        assert!(!status.success());
        assert!(start.elapsed() < Duration::from_secs(5));

        let mut p = Proc::spawn("failer", sh("echo oops >&2; exit 2")).expect("spawn");
        let err = p.wait_success(Duration::from_secs(10)).expect_err("fails");
        assert!(err.contains("oops") && err.contains("exit status: 2"), "{err}");
    }

    #[test]
    fn run_captured_collects_output_and_bounds_time() {
        let out =
            run_captured(sh("echo out; echo err >&2"), Duration::from_secs(10)).expect("runs").ok().expect("succeeds");
        assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("out\n", "err\n"));
        let failed = run_captured(sh("exit 5"), Duration::from_secs(10)).expect("runs");
        assert_eq!(failed.status.code(), Some(5));
        assert!(failed.ok().is_err());
        let start = Instant::now();
        assert!(run_captured(sh("exec sleep 30"), Duration::from_millis(200)).is_err());
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn child_guard_kills_on_drop() {
        let guard = ChildGuard::spawn(sh("exec sleep 30").stdin(Stdio::null())).expect("spawn");
        let pid = guard.id();
        drop(guard);
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        assert!(!alive, "process {pid} still exists after the guard was dropped");
    }
}
