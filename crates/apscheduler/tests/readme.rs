//! The README's Rust programs are examples: the quick start is `examples/quick_start.rs`
//! without its demonstration run, the replicas' program is `examples/replicas.rs`
//! without its demonstration job. Every line of a README block must be a line of its
//! example, in the same order, so the two cannot drift apart. (`cargo test --doc`
//! compiles the blocks themselves.)

use std::path::Path;

/// The lines of each fenced block of `text` whose info string starts with `rust`.
fn rust_blocks(text: &str) -> Vec<Vec<&str>> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if !line.trim_start().starts_with("```rust") {
            continue;
        }
        let mut block = Vec::new();
        loop {
            let line = lines
                .next()
                .expect("README.md: a ```rust block is not closed");
            if line.trim_start().starts_with("```") {
                break;
            }
            block.push(line);
        }
        blocks.push(block);
    }
    blocks
}

/// Checks that the README's `n`th Rust block (from 0) is `example`, line by line in
/// order, where `wrap` gives the form a block line may take in the example.
fn check_block(n: usize, example: &str, wrap: impl Fn(&str) -> String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let source = std::fs::read_to_string(root.join("examples").join(example)).expect(example);
    let blocks = rust_blocks(&readme);
    let block: Vec<&str> = blocks
        .get(n)
        .unwrap_or_else(|| panic!("README.md: no Rust block number {}", n + 1))
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        block.len() > 5,
        "README.md: the block for {example} is too short: {block:?}"
    );
    let mut example_lines = source.lines().map(str::trim);
    for (i, line) in block.iter().enumerate() {
        let wrapped = wrap(line);
        let bound = format!(" = {line}");
        assert!(
            example_lines.any(|l| l == *line || l == wrapped || l.ends_with(&bound)),
            "README.md, Rust block {} line {} ({line:?}): not in examples/{example} after \
             the lines before it; keep the two in sync",
            n + 1,
            i + 1
        );
    }
}

#[test]
fn readme_quick_start_is_the_example_without_its_demonstration() {
    // The example's demonstration needs two changes: the scheduler in an `Arc`, and the
    // job's handle kept (`let job = scheduler`).
    check_block(0, "quick_start.rs", |line| {
        line.replace(
            "BlockingScheduler::new()?",
            "Arc::new(BlockingScheduler::new()?)",
        )
    });
}

#[test]
fn readme_replicas_program_is_the_example_without_its_demonstration() {
    check_block(1, "replicas.rs", str::to_owned);
}
