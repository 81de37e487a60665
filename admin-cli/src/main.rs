//! staffpass-admin (see issue 6).
fn main() {
    println!("staffpass-admin: not yet implemented");
}
