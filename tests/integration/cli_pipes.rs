//! A reader that goes away is not a crash (`tagstack ... | head -1`), and bad input never
//! reaches a command line as an option: bad node addresses, and nodes ssh could not verify
//! (no host_key, not in `ssh.known_hosts`), stop at config load (exit 2) with no connection
//! attempted, and command words after `tagstack ssh NODE --` never configure
//! the local ssh.

use std::io::PipeWriter;
use std::net::TcpListener;
use std::process::{Command, Stdio};

use crate::support::{Counts, TestEnv};

/// The write end of a pipe whose read end is already closed: every write fails with EPIPE,
/// deterministically (no race with the child's first write).
fn closed_pipe() -> PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

fn stderr_of(cmd: &mut Command) -> (i32, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn printing_commands_stop_quietly_when_stdout_closes() {
    for args in [&["completions", "bash"][..], &["completions", "zsh"], &["man"], &["--help"]] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagstack"));
        cmd.args(args).stdout(closed_pipe()).stderr(Stdio::piped());
        let (code, stderr) = stderr_of(&mut cmd);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}: nothing on stderr, no panic");
    }
    // Both streams closed (`2>&1 | head -1`).
    let pipe = closed_pipe();
    let status = Command::new(env!("CARGO_BIN_EXE_tagstack"))
        .args(["completions", "bash"])
        .stdout(pipe.try_clone().unwrap())
        .stderr(pipe)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// `up` whose stdout, stderr or both readers closed finishes its work and exits 0; `plan`
/// too. The resources exist afterwards, exactly once.
#[test]
fn up_finishes_when_its_readers_close() {
    let env = TestEnv::new("pipes");
    env.write_config(1, "");
    // plan: stdout closed, progress on stderr kept (no panic message).
    let (code, stderr) = stderr_of(env.tagstack().arg("plan").command().stdout(closed_pipe()));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // up with its log reader gone: the work is done all the same.
    let status = env.tagstack().args(&["up", "--only", "infra"]).command().stderr(closed_pipe()).status().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(env.owned_counts(), Counts::full(2));

    // Both gone (`up 2>&1 | head -1`) after a change that makes `up` work again: a second
    // worker.
    env.write_config(2, "");
    let pipe = closed_pipe();
    let status = env
        .tagstack()
        .args(&["up", "--only", "infra"])
        .command()
        .stdout(pipe.try_clone().unwrap())
        .stderr(pipe)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(env.owned_counts(), Counts::full(3));

    // stdout gone, stderr read: no panic, converged.
    let (code, stderr) =
        stderr_of(env.tagstack().args(&["up", "--only", "infra", "--events"]).command().stdout(closed_pipe()));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (code, stderr) =
        stderr_of(env.tagstack().args(&["down", "--yes"]).command().stdout(closed_pipe()).stderr(Stdio::piped()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(env.owned_counts(), Counts::default());
}

const HOST_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd0BzvS3R+uygL7/APZNYODv64EwSfYypxOYC5em7nB";

/// A static environment: a control plane at 127.0.0.1:`port`, a worker at `worker_address`.
fn static_config(env: &TestEnv, port: u16, worker_address: &str, cp_host_key: bool) -> String {
    format!(
        "project = \"{}\"\nenvironment = \"ci\"\nprovider = \"static\"\n\n[ssh]\nprivate_key = \"{}\"\nuser = \"root\"\n\n[[nodes]]\nname = \"cp\"\naddress = \"127.0.0.1\"\nport = {port}\nrole = \"control-plane\"\n{}\n[[nodes]]\nname = \"w1\"\naddress = {worker_address:?}\nport = {port}\nrole = \"worker\"\nhost_key = \"{HOST_KEY}\"\n",
        env.project,
        env.path("id_ed25519").display(),
        if cp_host_key { format!("host_key = \"{HOST_KEY}\"\n") } else { String::new() },
    )
}

#[test]
fn bad_node_addresses_stop_at_config_load_without_connecting() {
    let env = TestEnv::new("badaddr");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let marker = env.path("pwned");
    let m = marker.display();
    let cases: Vec<(String, bool, &str)> = vec![
        (format!("-oProxyCommand=touch {m}"), true, "nodes[1].address"),
        (format!("-oProxyCommand=nc 127.0.0.1 {port}"), true, "nodes[1].address"),
        ("-127.0.0.1".into(), true, "nodes[1].address"),
        ("127.0.0.300".into(), true, "nodes[1].address"),
        ("127.0.1".into(), true, "nodes[1].address"),
        (format!("127.0.0.1 -oProxyCommand=touch {m}"), true, "nodes[1].address"),
        ("127.0.0.1".into(), false, "nodes[0].host_key"),
    ];
    for (address, cp_key, key) in &cases {
        std::fs::write(env.config_path(), static_config(&env, port, address, *cp_key)).unwrap();
        for args in [&["up"][..], &["status"], &["ssh", "w1"], &["ssh", "cp", "--", "true"], &["smoke"]] {
            let run = env.tagstack().args(args).run();
            assert_eq!(run.code, 2, "{address:?} {args:?}: expected a config error\n{}", run.stderr);
            let place = format!("{}:", env.config_path().display());
            assert!(
                run.stderr.contains(&place) && run.stderr.contains(&format!("`{key}`")),
                "{address:?} {args:?}: the error names file:line and `{key}`:\n{}",
                run.stderr
            );
            assert!(run.stderr.contains("hint:"), "{}", run.stderr);
        }
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("something connected to the node's port from {peer}"),
        Err(e) => panic!("{e}"),
    }
    assert!(!marker.exists(), "a ProxyCommand ran");
    assert!(!env.path(".tagstack").exists(), "no environment files were written");
}

/// A static node trusted only through `ssh.known_hosts` must be listed there (as
/// `[127.0.0.1]:PORT`, the name ssh looks it up by off port 22), and the file must exist:
/// otherwise every command stops at config load (exit 2), naming file:line, the key, the node
/// and the file, with no connection attempted.
#[test]
fn a_node_missing_from_known_hosts_stops_at_config_load() {
    let env = TestEnv::new("knownhosts");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let known_hosts = env.path("lab_known_hosts");
    let config = static_config(&env, port, "127.0.0.2", false)
        .replace("[ssh]\n", &format!("[ssh]\nknown_hosts = {:?}\n", known_hosts.display().to_string()));
    std::fs::write(env.config_path(), &config).unwrap();
    let refused = |why: &str, expected: &[&str]| {
        for args in [&["up"][..], &["status"], &["ssh", "cp", "--", "true"], &["smoke"]] {
            let run = env.tagstack().args(args).run();
            assert_eq!(run.code, 2, "{why} {args:?}: expected a config error\n{}", run.stderr);
            let place = format!("{}:", env.config_path().display());
            assert!(run.stderr.contains(&place), "{why} {args:?}: names file:line\n{}", run.stderr);
            for text in expected {
                assert!(run.stderr.contains(text), "{why} {args:?}: names {text:?}\n{}", run.stderr);
            }
        }
    };
    let file = known_hosts.display().to_string();
    refused("no file", &["`ssh.known_hosts`", "cannot read", &file, "hint:"]);
    // Listed on port 22 only, and another machine hashed: neither is cp on its port.
    std::fs::write(
        &known_hosts,
        format!("127.0.0.1 {HOST_KEY}\n|1|CZ3Jw2eVTv4v7maimRDdMmT5yCI=|370EOQaV5Qa06PstX4cyM35ecdM= {HOST_KEY}\n"),
    )
    .unwrap();
    let host = format!("[127.0.0.1]:{port}");
    refused("not listed", &["`nodes[0].host_key`", "node cp", &file, &host, "hint:", "ssh-keyscan -p"]);
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("something connected to the node's port from {peer}"),
        Err(e) => panic!("{e}"),
    }
    assert!(!env.path(".tagstack").exists(), "no environment files were written");

    // Listed: the config loads, and `ssh` gets as far as connecting (nobody answers there).
    drop(listener);
    std::fs::write(&known_hosts, format!("{host} {HOST_KEY}\n")).unwrap();
    let run = env.tagstack().args(&["ssh", "cp", "--", "true"]).run();
    assert_eq!(run.code, 1, "past config load, ssh fails to connect\n{}", run.stderr);
    assert!(run.stderr.contains("ssh to cp exited with 255"), "{}", run.stderr);
}

/// Words after `tagstack ssh NODE --` are the remote command, never options of the local
/// ssh (which parses options after the destination unless `--` ends them).
#[test]
fn ssh_command_words_are_never_local_ssh_options() {
    let env = TestEnv::new("sshargs");
    // A port nobody listens on: the connection is refused at once.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(env.config_path(), static_config(&env, port, "127.0.0.2", true)).unwrap();
    let marker = env.path("pwned");
    let run = env.tagstack().args(&["ssh", "cp", "--", &format!("-oProxyCommand=touch {}", marker.display())]).run();
    assert_eq!(run.code, 1, "ssh fails to connect, tagstack reports it\n{}", run.stderr);
    assert!(run.stderr.contains("ssh to cp exited with 255"), "{}", run.stderr);
    assert!(!marker.exists(), "the command word configured the local ssh (ProxyCommand ran)");
}
