//! The `we` command.

fn main() {}
