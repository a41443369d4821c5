//! The isolated network (`network = "isolated"`: pasta) and Landlock's
//! port rules (`tcp_connect`, `tcp_bind`).
//!
//! "The internet" is a network namespace the test makes, joined to the
//! host by a veth pair on an address of 198.51.100.0/24 (TEST-NET-2:
//! neither loopback nor private), with an HTTP server and a DNS server
//! (dnsmasq) that answers a test name. antimony runs in a mount namespace
//! of its own where /etc/resolv.conf names that DNS server: pasta reads it
//! there. Everything is removed on drop, a failed test included.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use libtest_mimic::Trial;

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both(
        "network::isolated_reaches_the_internet_and_not_the_host",
        isolated,
    ));
    t.extend(both(
        "network::isolated_forwards_a_port_into_the_sandbox",
        forwarded_port,
    ));
    t.extend(both(
        "network::port_rules_allow_one_port_and_refuse_another",
        port_rules,
    ));
    t.extend(both(
        "network::missing_pasta_or_tun_is_a_clear_error",
        missing_pasta_or_tun,
    ));
    t
}

/// The test name dnsmasq answers.
const NAME: &str = "internet.antimony-test.example";
/// The internet's HTTP port.
const HTTP: u16 = 8080;
const GREETING: &str = "hello from the internet";

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The test's internet; removed on drop.
struct Internet {
    ns: String,
    host_link: String,
    /// Its address (the HTTP and DNS servers'), and the host's end.
    addr: String,
    host_addr: String,
    /// An address of the host's in a private range (on the host's end).
    private_addr: String,
    dns: Option<Child>,
    stop: Arc<AtomicBool>,
    http: Option<std::thread::JoinHandle<()>>,
}

impl Internet {
    fn new() -> Result<Internet, String> {
        let n = NEXT.fetch_add(1, Ordering::SeqCst) % 60;
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let mut net = Internet {
            ns: format!("antimony-inet-{tag}"),
            host_link: format!("ai{tag}h"),
            addr: format!("198.51.100.{}", 4 * n + 2),
            host_addr: format!("198.51.100.{}", 4 * n + 1),
            private_addr: format!("10.251.{n}.1"),
            dns: None,
            stop: Arc::new(AtomicBool::new(false)),
            http: None,
        };
        let peer = format!("ai{tag}n");
        ip(&["netns", "add", &net.ns])?;
        ip(&[
            "link",
            "add",
            &net.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &net.ns])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", net.host_addr),
            "dev",
            &net.host_link,
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/32", net.private_addr),
            "dev",
            &net.host_link,
        ])?;
        ip(&["link", "set", &net.host_link, "up"])?;
        ip(&[
            "-n",
            &net.ns,
            "addr",
            "add",
            &format!("{}/30", net.addr),
            "dev",
            &peer,
        ])?;
        ip(&["-n", &net.ns, "link", "set", &peer, "up"])?;
        ip(&["-n", &net.ns, "link", "set", "lo", "up"])?;
        net.start_http()?;
        net.start_dns()?;
        Ok(net)
    }

    /// A thread in the internet's namespace (setns applies to the calling
    /// thread only) serves one greeting per connection.
    fn start_http(&mut self) -> Result<(), String> {
        let ns = std::fs::File::open(format!("/run/netns/{}", self.ns))
            .map_err(|e| format!("open the namespace: {e}"))?;
        let addr = self.addr.clone();
        let stop = self.stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        self.http = Some(std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: setns with a namespace descriptor we hold.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let _ = tx.send(Err(format!("setns: {}", std::io::Error::last_os_error())));
                return;
            }
            let l = match TcpListener::bind((addr.as_str(), HTTP)) {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(format!("listen: {e}")));
                    return;
                }
            };
            let _ = l.set_nonblocking(true);
            let _ = tx.send(Ok(()));
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 1024];
                        let _ = c.read(&mut buf);
                        let _ =
                            c.write_all(format!("HTTP/1.0 200 OK\r\n\r\n{GREETING}\n").as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the HTTP server did not start".to_string())?
    }

    fn start_dns(&mut self) -> Result<(), String> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "dnsmasq", "--keep-in-foreground"])
            .args(["--conf-file=/dev/null", "--no-resolv", "--no-hosts"])
            .args(["--bind-interfaces", "--pid-file", "--user=root"])
            .arg(format!("--listen-address={}", self.addr))
            .arg(format!("--address=/{NAME}/{}", self.addr))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("dnsmasq: {e}"))?;
        self.dns = Some(child);
        let ready = wait_until(Duration::from_secs(5), || dns_answers(&self.addr));
        ensure_ok(ready, "dnsmasq did not answer")
    }

    /// A resolv.conf that names the internet's DNS server.
    fn resolv_conf(&self, s: &Scratch) -> PathBuf {
        let p = s.write("resolv.conf", &format!("nameserver {}\n", self.addr));
        let _ = std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644));
        p
    }
}

fn ensure_ok(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.into()) }
}

/// One A query for NAME to `server`, answered.
fn dns_answers(server: &str) -> bool {
    let Ok(sock) = UdpSocket::bind("0.0.0.0:0") else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in NAME.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    if sock.send_to(&q, (server, 53)).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(sock.recv_from(&mut buf), Ok((n, _)) if n > 12)
}

impl Drop for Internet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.http.take() {
            let _ = t.join();
        }
        if let Some(mut c) = self.dns.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting the namespace deletes the veth pair with it.
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = ip(&["link", "del", &self.host_link]);
    }
}

/// The probe in an isolated sandbox, with /etc/resolv.conf replaced for
/// antimony and pasta; `root` does the bind, `s` runs antimony.
fn isolated_probe(root: &Scratch, s: &Scratch, resolv: &std::path::Path, sub: &[&str]) -> Output {
    let user = (s.who == Who::User).then_some(s);
    antimony_with_bind(root, resolv, "/etc/resolv.conf", user)
        .args(["run", "minimal", "--network", "--ro"])
        .arg(format!("{}=/probe", world().probe.display()))
        .args(["--program", "/probe", "--"])
        .args(sub)
        .run()
}

fn probe(s: &Scratch, profile: &str, extra: &[&str], sub: &[&str]) -> Output {
    s.antimony(["run", profile, "--ro"])
        .arg(format!("{}=/probe", world().probe.display()))
        .args(extra)
        .args(["--program", "/probe", "--"])
        .args(sub)
        .run()
}

fn accepted(l: &TcpListener) -> usize {
    let mut n = 0;
    while l.accept().is_ok() {
        n += 1;
    }
    n
}

/// The isolated sandbox reaches the internet's server by address and by
/// the name its DNS server gives; it does not reach a server on the host's
/// 127.0.0.1, a host abstract socket, the host's address on the veth, nor
/// the host's address in a private range (EACCES: the rules init adds).
fn isolated(who: Who) -> TestResult {
    use std::os::linux::net::SocketAddrExt;
    if !world().is_root || !installed("dnsmasq") || !installed("pasta") {
        return skip("needs root, dnsmasq and pasta (apt-get install dnsmasq-base passt)");
    }
    let s = scratch!(who);
    let root = scratch!(Who::Root);
    let net = Internet::new()?;
    let resolv = net.resolv_conf(&s);
    let run = |sub: &[&str]| isolated_probe(&root, &s, &resolv, sub);

    let port = HTTP.to_string();
    for host in [net.addr.as_str(), NAME] {
        let out = run(&["connect", host, &port]);
        let line = escaped(&format!("connect to {host}"), &out)?;
        ensure!(line.contains(GREETING), "{host}: {}", out.show());
    }

    // A server on the host's loopback, and on every host address.
    let lo = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    lo.set_nonblocking(true).map_err(|e| e.to_string())?;
    let lo_port = lo
        .local_addr()
        .map_err(|e| e.to_string())?
        .port()
        .to_string();
    let any = TcpListener::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    any.set_nonblocking(true).map_err(|e| e.to_string())?;
    let any_port = any
        .local_addr()
        .map_err(|e| e.to_string())?
        .port()
        .to_string();
    let out = run(&["connect", "127.0.0.1", &lo_port]);
    blocked("the host's 127.0.0.1", &out)?;
    for host in [&net.host_addr, &net.private_addr] {
        let out = run(&["connect", host, &any_port]);
        let line = blocked(&format!("the host's {host}"), &out)?;
        ensure!(line.contains("EACCES"), "{host}: {}", out.show());
    }
    ensure!(
        accepted(&lo) == 0 && accepted(&any) == 0,
        "a connection reached the host"
    );
    // Control: the host reaches its own server on the private address.
    ensure!(
        TcpStream::connect((
            net.private_addr.as_str(),
            any_port.parse::<u16>().unwrap_or(0)
        ))
        .is_ok(),
        "control: the host does not reach {}",
        net.private_addr
    );

    let name = unique(&s, "abstract");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| e.to_string())?;
    let unix = std::os::unix::net::UnixListener::bind_addr(&addr)
        .map_err(|e| format!("listen on @{name}: {e}"))?;
    unix.set_nonblocking(true).map_err(|e| e.to_string())?;
    let out = run(&["unix", &name]);
    blocked("a host abstract socket", &out)?;
    ensure!(unix.accept().is_err(), "a unix connection reached the host");
    pass()
}

/// `forward_ports`: a server in the sandbox answers on the host's 127.0.0.1.
fn forwarded_port(who: Who) -> TestResult {
    if !installed("pasta") {
        return skip("pasta is not installed (apt-get install passt)");
    }
    let s = scratch!(who);
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        l.local_addr().map_err(|e| e.to_string())?.port()
    };
    s.profile(
        "forwarded",
        &format!(
            "inherits = [\"minimal\"]\n[sandbox]\nnetwork = \"isolated\"\nforward_ports = [{port}]\n"
        ),
    );
    let child = s
        .antimony(["run", "forwarded", "--ro"])
        .arg(format!("{}=/probe", world().probe.display()))
        .args(["--program", "/probe", "--", "serve", &port.to_string()])
        .spawn();
    let mut child = Reaped(child);
    let mut got = String::new();
    let reached = wait_until(Duration::from_secs(20), || {
        let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
        got.clear();
        let _ = c.read_to_string(&mut got);
        got.contains("served from the sandbox")
    });
    let _ = wait_until(Duration::from_secs(10), || {
        matches!(child.0.try_wait(), Ok(Some(_)))
    });
    ensure!(reached, "no answer through the forwarded port: {got:?}");
    pass()
}

/// `tcp_connect` and `tcp_bind` (Landlock ABI 4): with the host's network,
/// one host port is reached and another refused (EACCES); one port is
/// bound and another refused. `--dry-run` shows the rules.
fn port_rules(who: Who) -> TestResult {
    let s = scratch!(who);
    let listen = || -> Result<(TcpListener, u16), String> {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        let p = l.local_addr().map_err(|e| e.to_string())?.port();
        Ok((l, p))
    };
    let (allowed, a) = listen()?;
    let (refused, r) = listen()?;
    let free = || -> Result<u16, String> { Ok(listen()?.1) };
    let (b_ok, b_no) = (free()?, free()?);
    s.profile(
        "ports",
        &format!(
            "inherits = [\"minimal\"]\n[sandbox]\nnetwork = \"host\"\ntcp_connect = [{a}]\ntcp_bind = [{b_ok}]\n"
        ),
    );
    let plan = s
        .antimony(["run", "ports", "--program", "/bin/sh", "--dry-run"])
        .run();
    ensure!(
        plan.stdout
            .contains(&format!("TCP connect: ports {a} only"))
            && plan
                .stdout
                .contains(&format!("TCP bind: ports {b_ok} only")),
        "{}",
        plan.show()
    );
    let a_s = a.to_string();
    let r_s = r.to_string();
    escaped(
        "connect to the allowed port",
        &probe(&s, "ports", &[], &["tcp", &a_s]),
    )?;
    let out = probe(&s, "ports", &[], &["tcp", &r_s]);
    let line = blocked("connect to another port", &out)?;
    ensure!(line.contains("EACCES"), "{}", out.show());
    ensure!(
        wait_until(Duration::from_secs(5), || accepted(&allowed) == 1),
        "the allowed connection did not arrive"
    );
    ensure!(accepted(&refused) == 0, "the refused port was reached");
    escaped(
        "bind the allowed port",
        &probe(&s, "ports", &[], &["bind", &b_ok.to_string()]),
    )?;
    let out = probe(&s, "ports", &[], &["bind", &b_no.to_string()]);
    let line = blocked("bind another port", &out)?;
    ensure!(line.contains("EACCES"), "{}", out.show());
    // Control: without the rules, the other port is reached.
    escaped(
        "control: no port rules",
        &probe(&s, "minimal", &["--network=host"], &["tcp", &r_s]),
    )?;
    pass()
}

/// No pasta (a non-executable file over it) and an unusable /dev/net/tun
/// (a root-only regular file over it): the launch fails with an error
/// that says how to fix it, and the program never runs.
fn missing_pasta_or_tun(who: Who) -> TestResult {
    if !world().is_root {
        return skip("needs root (to bind over /usr/bin/pasta and /dev/net/tun)");
    }
    let Some(pasta) = ["/usr/bin/pasta", "/usr/local/bin/pasta"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        return skip("pasta is not installed (apt-get install passt)");
    };
    let s = scratch!(who);
    let root = scratch!(Who::Root);
    let user = (who == Who::User).then_some(&s);
    let fake = root.write("not-a-program", "");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    for (target, wanted) in [
        (pasta, &["pasta is not installed", "passt"][..]),
        (
            "/dev/net/tun",
            &["/dev/net/tun", "chmod 0666 /dev/net/tun"][..],
        ),
    ] {
        let out = antimony_with_bind(&root, &fake, target, user)
            .args(["run", "sh", "--network", "--", "-c", "echo program-ran"])
            .run();
        ensure!(
            out.code() != Some(0) && !out.stdout.contains("program-ran"),
            "{target}: the launch went on: {}",
            out.show()
        );
        for w in wanted {
            ensure!(out.stderr.contains(w), "{target}: no `{w}`: {}", out.show());
        }
    }
    pass()
}
