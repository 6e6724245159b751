//! Writes the seed inputs of every fuzz target into `fuzz/corpus/<target>/seed-<name>`.
//!
//! ```sh
//! cargo run -p spice-fuzzing --example write_seeds            # the repository's fuzz/corpus
//! cargo run -p spice-fuzzing --example write_seeds -- DIR     # DIR/<target>/
//! ```

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus"));
    for (target, _) in spice_fuzzing::TARGETS {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        let seeds = spice_fuzzing::seeds::for_target(target);
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        }
        println!("{target}: {} seeds in {}", seeds.len(), dir.display());
    }
    Ok(())
}
