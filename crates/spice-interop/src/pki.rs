//! A throwaway PKI for TLS tests, made with the `openssl` command line in
//! its own temporary directory: a CA, a server certificate for `localhost`
//! and 127.0.0.1 signed by it (QEMU's `x509-dir` names: `ca-cert.pem`,
//! `server-cert.pem`, `server-key.pem`), the server key encrypted with the
//! password `s3cret` (PKCS#8 `server-key-enc.pem`, OpenSSL's traditional
//! form `server-key-trad.pem`), and a second, unrelated CA (`other-ca-*`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The PKI's directory, removed on drop.
pub struct TestPki {
    /// Where the files are.
    pub dir: PathBuf,
}

/// Runs `openssl args` in `dir`; panics unless it succeeds.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestPki {
    /// Makes the PKI under a directory named after `tag` and the process.
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("spice-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            let (key, cert, subj) = (
                format!("{ca}-key.pem"),
                format!("{ca}-cert.pem"),
                format!("/CN=spice-rs test {ca}"),
            );
            args.extend(["-keyout", &key, "-out", &cert, "-days", "2", "-subj", &subj]);
            openssl(&dir, &args);
        }
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let mut args = vec!["req"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "server-key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/O=spice-rs/CN=localhost",
        ]);
        openssl(&dir, &args);
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca-cert.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-out",
                "server-cert.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        // The same key encrypted as `openssl genpkey -aes256` writes it
        // (PKCS#8, PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC), and in OpenSSL's
        // traditional form (Proc-Type: 4,ENCRYPTED).
        openssl(
            &dir,
            &[
                "pkcs8",
                "-topk8",
                "-in",
                "server-key.pem",
                "-v2",
                "aes-256-cbc",
                "-passout",
                "pass:s3cret",
                "-out",
                "server-key-enc.pem",
            ],
        );
        openssl(
            &dir,
            &[
                "pkey",
                "-in",
                "server-key.pem",
                "-traditional",
                "-aes256",
                "-passout",
                "pass:s3cret",
                "-out",
                "server-key-trad.pem",
            ],
        );
        Self { dir }
    }

    /// The path of one of its files, as a string (for client properties).
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
