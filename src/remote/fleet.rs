//! SSH sessions to every node (system ssh through the `openssh` crate, one multiplexed master
//! per node, strict host-key checking against the environment's known_hosts), file upload and
//! download (binary files 0600 on both ends),
//! and script runs whose every output line is prefixed with the node, reported, and kept in
//! the node's log file. Concurrency is bounded by the caller's limit.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::error::RemoteError;
use super::files::fingerprint;
use super::host::Host;
use crate::reporter::Reporter;
use crate::shell::sh_quote;

const LAST_LINES: usize = 15;

/// Forwards the lines of one output stream, tagged stdout (true) or stderr (false).
async fn pump<R: tokio::io::AsyncRead + Unpin>(
    stream: Option<R>,
    is_out: bool,
    tx: tokio::sync::mpsc::UnboundedSender<(bool, String)>,
) {
    if let Some(s) = stream {
        let mut lines = BufReader::new(s).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send((is_out, line)).is_err() {
                break;
            }
        }
    }
}

/// Paths of the environment's SSH client files and logs.
#[derive(Debug, Clone)]
pub struct EnvFiles {
    pub dir: PathBuf,
    pub ssh_config: PathBuf,
    pub known_hosts: PathBuf,
    pub logs: PathBuf,
}

impl EnvFiles {
    pub fn new(dir: &Path) -> EnvFiles {
        EnvFiles {
            dir: dir.to_path_buf(),
            ssh_config: dir.join("ssh_config"),
            known_hosts: dir.join("known_hosts"),
            logs: dir.join("logs"),
        }
    }
}

/// How a command ended on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// `None` when it was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub struct Fleet {
    sessions: BTreeMap<String, (Host, Session)>,
    logs: PathBuf,
    /// Strings never written to logs or progress (e.g. the bootstrap token kubeadm echoes).
    secrets: Vec<String>,
    // Keeps the control sockets' directory alive as long as the sessions.
    _control: tempfile::TempDir,
}

/// The full error chain: the openssh crate's Display alone hides ssh's own message.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        src = s.source();
    }
    out
}

/// The error of a step on `node`, from its exit code, last lines and message.
fn step_error<'a>(node: &'a str, step: &'a str) -> impl Fn(Option<i32>, Vec<String>, String) -> RemoteError + 'a {
    move |exit_code, last_lines, message| RemoteError::Step {
        node: node.into(),
        step: step.into(),
        exit_code,
        last_lines,
        message,
    }
}

/// Waits for a transfer's remote side (`verb path`, e.g. "uploading /x"): an error with its
/// stderr unless it exited 0.
async fn ended(
    child: openssh::Child<&Session>,
    verb: &str,
    path: &str,
    fail: &impl Fn(Option<i32>, Vec<String>, String) -> RemoteError,
) -> Result<(), RemoteError> {
    let out =
        child.wait_with_output().await.map_err(|e| fail(None, vec![], format!("{verb} {path}: {}", chain(&e))))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail(
            out.status.code(),
            stderr.lines().map(str::to_string).collect(),
            format!("{verb} {path} failed"),
        ));
    }
    Ok(())
}

/// Refuses a node whose name, address or user could reach a command line (or the ssh_config
/// text) as anything but a plain word: the `openssh` crate passes the destination to `ssh`
/// without a `--`, so a name starting with `-` would be read as an option. The config checks
/// static nodes at load; this guards every other source (AWS tags, addresses from the API).
fn check_node(node: &Host) -> Result<(), RemoteError> {
    let name_ok = crate::config::check_address(&node.alias).is_ok() && node.alias.parse::<std::net::IpAddr>().is_err();
    let problem = if !name_ok {
        Some(format!("the node name {:?} is not a plain host alias", node.alias))
    } else if let Err(why) = crate::config::check_address(&node.address) {
        Some(format!("the address {:?} is not an IP address or host name: {why}", node.address))
    } else if !crate::config::is_valid_login(&node.user) {
        Some(format!("the login {:?} is not a valid user name", node.user))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(message) => Err(RemoteError::Connect {
            node: node.alias.clone(),
            address: format!("{}:{}", node.address, node.port),
            message: format!("refusing to pass it to ssh: {message}"),
        }),
    }
}

async fn presented_key(node: &Host) -> Option<String> {
    // `--`: nothing after it is an option, whatever the address.
    let out = tokio::process::Command::new("ssh-keyscan")
        .args(["-T", "5", "-t", "ed25519", "-p", &node.port.to_string(), "--", &node.address])
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find(|l| !l.starts_with('#')).and_then(|l| l.split_once(' ')).map(|(_, k)| k.to_string())
}

async fn connect_one(node: &Host, files: &EnvFiles, control: &Path) -> Result<Session, RemoteError> {
    check_node(node)?;
    let mut b = SessionBuilder::default();
    b.config_file(&files.ssh_config)
        .known_hosts_check(KnownHosts::Strict)
        .control_directory(control)
        .connect_timeout(Duration::from_secs(10))
        .server_alive_interval(Duration::from_secs(15));
    match b.connect_mux(&node.alias).await {
        Ok(s) => Ok(s),
        Err(e) => {
            let message = chain(&e);
            if message.contains("Host key verification failed") || message.contains("HOST IDENTIFICATION HAS CHANGED") {
                let expected = node.host_key.as_deref().and_then(fingerprint).unwrap_or_else(|| "(none pinned)".into());
                let presented =
                    presented_key(node).await.as_deref().and_then(fingerprint).unwrap_or_else(|| "(unknown)".into());
                return Err(RemoteError::HostKey {
                    node: node.alias.clone(),
                    address: node.address.clone(),
                    expected,
                    presented,
                });
            }
            Err(RemoteError::Connect {
                node: node.alias.clone(),
                address: format!("{}:{}", node.address, node.port),
                message,
            })
        }
    }
}

impl Fleet {
    /// Connects to every node, at most `limit` at a time. All failures are returned, not just
    /// the first, so one unreachable node does not hide another.
    pub async fn connect(
        nodes: &[Host],
        files: &EnvFiles,
        limit: usize,
        r: &dyn Reporter,
    ) -> Result<Fleet, Vec<RemoteError>> {
        // A short path: control sockets are limited to 108 bytes.
        let control = tempfile::Builder::new().prefix("ts-").tempdir_in("/tmp").map_err(|e| {
            vec![RemoteError::Local { what: "creating the SSH control directory".into(), message: e.to_string() }]
        })?;
        let results: Vec<(Host, Result<Session, RemoteError>)> = futures_util::stream::iter(nodes.iter().cloned())
            .map(|n| {
                let control = control.path().to_path_buf();
                async move {
                    let key = format!("ssh/{}", n.alias);
                    r.start(&key, &format!("connect to {}@{}:{}", n.user, n.address, n.port));
                    let res = connect_one(&n, files, &control).await;
                    match &res {
                        Ok(_) => r.finish(&key, "connected"),
                        Err(e) => r.fail(&key, &e.to_string()),
                    }
                    (n, res)
                }
            })
            .buffer_unordered(limit.max(1))
            .collect()
            .await;
        let mut sessions = BTreeMap::new();
        let mut errors = Vec::new();
        for (n, res) in results {
            match res {
                Ok(s) => {
                    sessions.insert(n.alias.clone(), (n, s));
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            errors.sort_by(|a, b| a.node().cmp(b.node()));
            return Err(errors);
        }
        Ok(Fleet { sessions, logs: files.logs.clone(), secrets: Vec::new(), _control: control })
    }

    /// Redacts `secret` from every output line from now on.
    pub fn redact(&mut self, secret: &str) {
        self.secrets.push(secret.to_string());
    }

    fn scrub(&self, line: String) -> String {
        self.secrets.iter().fold(line, |l, s| if s.is_empty() { l } else { l.replace(s.as_str(), "[redacted]") })
    }

    fn get(&self, node: &str) -> Result<&(Host, Session), RemoteError> {
        self.sessions
            .get(node)
            .ok_or_else(|| RemoteError::Local { what: format!("node {node}"), message: "not connected".into() })
    }

    /// Runs `sh -c` as root (through `sudo -n` for other users).
    fn root_command<'a>(node: &Host, session: &'a Session, script: &str) -> openssh::OwningCommand<&'a Session> {
        let mut cmd = if node.user == "root" {
            session.command("sh")
        } else {
            let mut c = session.command("sudo");
            c.arg("-n").arg("sh");
            c
        };
        cmd.arg("-c").arg(script);
        cmd
    }

    /// Writes `content` to `path` on the node (root-owned, mode 0600/0700), atomically.
    pub async fn upload(
        &self,
        node: &str,
        step: &str,
        path: &str,
        content: &str,
        executable: bool,
    ) -> Result<(), RemoteError> {
        let mode = if executable { "0700" } else { "0600" };
        self.write(node, step, path, mode, &mut content.as_bytes()).await
    }

    /// Copies the local file `src` to `path` on the node (root-owned, 0600), atomically, byte
    /// for byte (the text [`Fleet::upload`] is for scripts and configs).
    pub async fn upload_file(&self, node: &str, step: &str, path: &str, src: &Path) -> Result<(), RemoteError> {
        let mut file = tokio::fs::File::open(src)
            .await
            .map_err(|e| RemoteError::Local { what: format!("opening {}", src.display()), message: e.to_string() })?;
        self.write(node, step, path, "0600", &mut file).await
    }

    /// Streams `source` into `path.tmp` on the node, then renames it into place: a reader never
    /// sees half a file, whatever stops the copy.
    async fn write(
        &self,
        node: &str,
        step: &str,
        path: &str,
        mode: &str,
        source: &mut (impl tokio::io::AsyncRead + Unpin),
    ) -> Result<(), RemoteError> {
        let (n, session) = self.get(node)?;
        let dir = sh_quote(&Path::new(path).parent().map_or("/".into(), |d| d.display().to_string()));
        let (tmp, dest) = (sh_quote(&format!("{path}.tmp")), sh_quote(path));
        let script =
            format!("umask 077 && mkdir -p -- {dir} && cat > {tmp} && chmod {mode} -- {tmp} && mv -- {tmp} {dest}");
        let fail = step_error(node, step);
        let mut child = Self::root_command(n, session, &script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| fail(None, vec![], format!("uploading {path}: {}", chain(&e))))?;
        if let Some(mut stdin) = child.stdin().take() {
            let written = async {
                tokio::io::copy(source, &mut stdin).await?;
                stdin.shutdown().await
            }
            .await;
            drop(stdin);
            if let Err(e) = written {
                return Err(fail(None, vec![], format!("uploading {path}: {e}")));
            }
        }
        ended(child, "uploading", path, &fail).await
    }

    /// Copies the node's file `path` (read as root) to the local `dest`, created 0600 (an
    /// etcd snapshot holds every Secret of the cluster), byte for byte; answers its size.
    pub async fn download(&self, node: &str, step: &str, path: &str, dest: &Path) -> Result<u64, RemoteError> {
        let (n, session) = self.get(node)?;
        let fail = step_error(node, step);
        let local = |what: &str, e: std::io::Error| RemoteError::Local {
            what: format!("{what} {}", dest.display()),
            message: e.to_string(),
        };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dest)
            .await
            .map_err(|e| local("creating", e))?;
        let mut child = Self::root_command(n, session, &format!("exec cat -- {}", sh_quote(path)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| fail(None, vec![], format!("downloading {path}: {}", chain(&e))))?;
        let copied = match child.stdout().take() {
            Some(mut out) => tokio::io::copy(&mut out, &mut file).await.map_err(|e| local("writing", e))?,
            None => 0,
        };
        file.flush().await.map_err(|e| local("writing", e))?;
        ended(child, "downloading", path, &fail).await?;
        Ok(copied)
    }

    /// Runs a script already on the node with bash, as root; streams its output. Returns the
    /// stdout lines.
    pub async fn run(
        &self,
        node: &str,
        step: &str,
        script_path: &str,
        r: &dyn Reporter,
    ) -> Result<Vec<String>, RemoteError> {
        let (n, session) = self.get(node)?;
        let key = format!("{step}/{node}");
        let fail = |message: String| RemoteError::Step {
            node: node.into(),
            step: step.into(),
            exit_code: None,
            last_lines: vec![],
            message,
        };
        let mut child = Self::root_command(n, session, &format!("exec bash -- {}", sh_quote(script_path)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| fail(chain(&e)))?;
        let log_path = self.logs.join(format!("{node}.log"));
        let mut log = tokio::fs::OpenOptions::new().create(true).append(true).open(&log_path).await.map_err(|e| {
            RemoteError::Local { what: format!("opening {}", log_path.display()), message: e.to_string() }
        })?;
        let stdout = child.stdout().take();
        let stderr = child.stderr().take();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(bool, String)>();
        let out_task = tokio::spawn(pump(stdout, true, tx.clone()));
        let err_task = tokio::spawn(pump(stderr, false, tx));
        let mut out_lines = Vec::new();
        let mut last: VecDeque<String> = VecDeque::new();
        while let Some((is_out, line)) = rx.recv().await {
            let line = self.scrub(line);
            let _ = log.write_all(format!("[{step}] {line}\n").as_bytes()).await;
            r.update(&key, &format!("[{node}] {line}"));
            if last.len() == LAST_LINES {
                last.pop_front();
            }
            last.push_back(line.clone());
            if is_out {
                out_lines.push(line);
            }
        }
        let _ = tokio::join!(out_task, err_task);
        let _ = log.flush().await;
        let status = child.wait().await.map_err(|e| fail(chain(&e)))?;
        if !status.success() {
            return Err(RemoteError::Step {
                node: node.into(),
                step: step.into(),
                exit_code: status.code(),
                last_lines: last.into_iter().collect(),
                message: format!("{script_path} failed (log: {})", log_path.display()),
            });
        }
        Ok(out_lines)
    }

    /// Runs a short command as root and returns its stdout (for reads such as `cat`); a
    /// non-zero exit is an error carrying stderr.
    pub async fn read(&self, node: &str, step: &str, command: &str) -> Result<String, RemoteError> {
        let out = self.exec(node, step, command).await?;
        if out.code != Some(0) {
            return Err(RemoteError::Step {
                node: node.into(),
                step: step.into(),
                exit_code: out.code,
                last_lines: out.stderr.lines().map(str::to_string).collect(),
                message: format!("`{command}` failed"),
            });
        }
        Ok(out.stdout)
    }

    /// Runs a short command as root and returns how it ended, whatever its exit code; an
    /// error only when it could not be run at all. Output is scrubbed of secrets.
    pub async fn exec(&self, node: &str, step: &str, command: &str) -> Result<Output, RemoteError> {
        let (n, session) = self.get(node)?;
        let out = Self::root_command(n, session, command).stdin(Stdio::null()).output().await.map_err(|e| {
            RemoteError::Step {
                node: node.into(),
                step: step.into(),
                exit_code: None,
                last_lines: vec![],
                message: chain(&e),
            }
        })?;
        Ok(Output {
            code: out.status.code(),
            stdout: self.scrub(String::from_utf8_lossy(&out.stdout).into_owned()),
            stderr: self.scrub(String::from_utf8_lossy(&out.stderr).into_owned()),
        })
    }

    pub async fn close(self) {
        for (_, (_, s)) in self.sessions {
            let _ = s.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_quote_is_one_literal_word() {
        assert_eq!(sh_quote("/var/lib/tagstack/a b"), "'/var/lib/tagstack/a b'");
        let tricky = "x'; touch /tmp/pwned; echo '";
        let out =
            std::process::Command::new("sh").args(["-c", &format!("printf %s {}", sh_quote(tricky))]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), tricky);
    }

    #[test]
    fn nodes_that_would_reach_ssh_as_options_are_refused() {
        let node = |name: &str, address: &str, user: &str| Host {
            alias: name.into(),
            address: address.into(),
            port: 22,
            user: user.into(),
            host_key: None,
        };
        assert!(check_node(&node("w1", "10.0.0.1", "ubuntu")).is_ok());
        assert!(check_node(&node("-oProxyCommand=x", "10.0.0.1", "ubuntu")).is_err());
        assert!(check_node(&node("10.0.0.1", "10.0.0.1", "ubuntu")).is_err());
        assert!(check_node(&node("w1", "-oProxyCommand=x", "ubuntu")).is_err());
        assert!(check_node(&node("w1", "10.0.0.1\n  ProxyCommand x", "ubuntu")).is_err());
        assert!(check_node(&node("w1", "10.0.0.1", "-l root")).is_err());
    }
}
