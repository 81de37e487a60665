//! staffpass-testnet (see issue 7).
fn main() {
    println!("staffpass-testnet: not yet implemented");
}
