//! The secret key files, read as the node and the admin CLI read them.
//! The first byte picks which file the rest is: the node's `issuer.key`,
//! `node.key` or `data.key` (loaded with `KeyFiles::load` beside two valid
//! key files, so the whole reader runs: permissions, size, UTF-8, parse),
//! or a steward, issuer or staff key file read by `staffpass-admin`
//! (`Role::load_secret`, and `Role::public_arg` for a public key).
#![no_main]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use staffpass_admin::keys::{Issuer, Role, Staff, Steward};
use staffpass_node::keys::{DATA_FILE, ISSUER_FILE, KeyFiles, NODE_FILE};

struct Dir {
    _tmp: tempfile::TempDir,
    keys: PathBuf,
    admin: PathBuf,
}

fn dir() -> &'static Dir {
    static D: OnceLock<Dir> = OnceLock::new();
    D.get_or_init(|| {
        let tmp = staffpass_fuzz::scratch_dir();
        let keys = tmp.path().join("keys");
        KeyFiles::create(&keys, false).expect("key files");
        let admin = tmp.path().join("admin.key");
        Dir { _tmp: tmp, keys, admin }
    })
}

fn write(path: &std::path::Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write the key file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

fuzz_target!(|data: &[u8]| {
    let Some((which, file)) = data.split_first() else { return };
    let d = dir();
    match which % 6 {
        n @ 0..=2 => {
            let name = [ISSUER_FILE, NODE_FILE, DATA_FILE][usize::from(n)];
            let path = d.keys.join(name);
            let good = std::fs::read(&path).expect("read the valid key");
            write(&path, file);
            let _ = KeyFiles::load(&d.keys);
            write(&path, &good);
        }
        n => {
            write(&d.admin, file);
            let arg = d.admin.to_str().expect("a UTF-8 path");
            match n {
                3 => {
                    let _ = Steward::load_secret(&d.admin);
                    let _ = Steward::public_arg(arg);
                }
                4 => {
                    let _ = Issuer::load_secret(&d.admin);
                    let _ = Issuer::public_arg(arg);
                }
                _ => {
                    let _ = Staff::load_secret(&d.admin);
                    let _ = Staff::public_arg(arg);
                }
            }
            if let Ok(text) = std::str::from_utf8(file) {
                // A public key given on the command line (never a path here).
                let line = text.trim();
                if !std::path::Path::new(line).exists() {
                    let _ = Steward::public_arg(line);
                    let _ = Issuer::public_arg(line);
                    let _ = Staff::public_arg(line);
                }
            }
        }
    }
});
