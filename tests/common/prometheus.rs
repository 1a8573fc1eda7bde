//! A real Prometheus 2.42 process (`/usr/bin/prometheus`, Debian's `prometheus` package) for the
//! tests that compare with it or send to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A running Prometheus; killed when dropped.
pub struct Prometheus {
    child: Child,
    pub address: String,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus on `address` with `config` (YAML) written to `dir/prometheus.yml`, its
    /// data in `dir/prometheus-data` (kept across restarts in the same `dir`) and its log appended
    /// to `dir/prometheus.log`, plus `args`. Waits until `/-/ready` answers 200.
    pub fn start(dir: &Path, address: &str, config: &str, args: &[&str]) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).is_file(),
            "{PROMETHEUS} is missing: apt-get install prometheus (2.42)"
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.join("prometheus.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn prometheus");
        let prometheus = Prometheus {
            child,
            address: address.to_string(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = std::net::TcpStream::connect(address).is_ok()
                && super::get(&prometheus.url("/-/ready")).0 == 200;
            if ready {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and waits for it to exit (a clean shutdown, unlike dropping it).
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
