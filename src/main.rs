//! vigil: the binary. (Being assembled: see DESIGN.md.)
fn main() {}
