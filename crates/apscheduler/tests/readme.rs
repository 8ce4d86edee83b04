//! The README's Rust quick start is `examples/quick_start.rs` without its demonstration
//! run: every line of the README's block must be a line of the example, in the same
//! order, so the two cannot drift apart. (`cargo test --doc` compiles the block itself.)

use std::path::Path;

/// The lines of the first fenced block of `text` whose info string starts with `rust`.
fn first_rust_block(text: &str) -> Vec<&str> {
    let mut lines = text.lines();
    let mut block = Vec::new();
    for line in lines.by_ref() {
        if line.trim_start().starts_with("```rust") {
            break;
        }
    }
    for line in lines {
        if line.trim_start().starts_with("```") {
            return block;
        }
        block.push(line);
    }
    panic!("README.md: no closed ```rust block");
}

#[test]
fn readme_quick_start_is_the_example_without_its_demonstration() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let example =
        std::fs::read_to_string(root.join("examples/quick_start.rs")).expect("quick_start.rs");
    let block: Vec<&str> = first_rust_block(&readme)
        .into_iter()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        block.len() > 5,
        "README.md: the quick start block is too short: {block:?}"
    );
    let mut example_lines = example.lines().map(str::trim);
    for (n, line) in block.iter().enumerate() {
        // Line by line, in order. The example's demonstration needs two changes: the
        // scheduler in an `Arc`, and the job's handle kept (`let job = scheduler`).
        let wrapped = line.replace(
            "BlockingScheduler::new()?",
            "Arc::new(BlockingScheduler::new()?)",
        );
        let bound = format!(" = {line}");
        assert!(
            example_lines.any(|l| l == *line || l == wrapped || l.ends_with(&bound)),
            "README.md quick start, line {} ({line:?}): not in examples/quick_start.rs after \
             the lines before it; keep the two in sync",
            n + 1
        );
    }
}
