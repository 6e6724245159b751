//! The demo with `--tls-cert`/`--tls-key`: spice-gtk opens the URI it prints
//! and, with every channel TLS-only (`--tls-channel default`), sees the card.

use std::time::Duration;

use serde_json::json;
use spice_interop::gtk::SpiceGtk;
use spice_interop::pki::TestPki;

mod common;

const T: Duration = Duration::from_secs(20);

#[test]
fn demo_serves_tls_with_its_certificate_and_key() {
    let pki = TestPki::new("demo");
    let (cert, key) = (pki.path("server-cert.pem"), pki.path("server-key.pem"));
    let (_demo, uri) = common::start_demo_uri(&[
        "--tls-port",
        "0",
        "--width",
        "320",
        "--height",
        "240",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-channel",
        "default",
    ]);
    assert!(uri.contains("tls-port="), "the URI names the TLS port: {uri}");

    let mut gtk = SpiceGtk::start();
    gtk.send(json!({
        "cmd": "connect",
        "uri": uri,
        "props": {"ca-file": pki.path("ca-cert.pem")},
    }));
    gtk.expect("mark", T);
    let (w, h, _) = gtk.surface().expect("surface");
    assert_eq!((w, h), (320, 240));
    gtk.quit();
}
