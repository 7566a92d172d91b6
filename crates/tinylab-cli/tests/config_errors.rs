//! Malformed experiment files: one clear line naming file and key, exit code 2, no run
//! directory left behind.

use std::path::PathBuf;
use std::process::Command;

const GOOD: &str = r#"
[task]
kind = "mqar"
vocab_size = 32
seq_len = 16
num_kv = 2
[model]
d_model = 16
[train]
steps = 2
batch_size = 4
"#;

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinylab-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `tinylab run` on `text` and returns (exit code, stderr, whether the run dir exists).
fn run_config(tag: &str, text: &str, extra: &[&str]) -> (i32, String, bool) {
    let d = tmp(tag);
    let cfg = d.join("exp.toml");
    std::fs::write(&cfg, text).unwrap();
    let out_dir = d.join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_tinylab"))
        .args(["run", cfg.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), "-q"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let exists = out_dir.exists();
    std::fs::remove_dir_all(&d).unwrap();
    (out.status.code().unwrap_or(-1), stderr, exists)
}

fn assert_config_error(tag: &str, text: &str, extra: &[&str], key: &str, hint: &str) {
    let (code, stderr, exists) = run_config(tag, text, extra);
    assert_eq!(code, 2, "exit code for {tag}; stderr: {stderr}");
    assert!(!exists, "{tag}: a run directory was left behind");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{tag}: expected one line, got: {stderr}");
    assert!(lines[0].contains("exp.toml"), "{tag}: file not named: {stderr}");
    assert!(lines[0].contains(key), "{tag}: key `{key}` not named: {stderr}");
    assert!(lines[0].contains(hint), "{tag}: hint `{hint}` missing: {stderr}");
}

#[test]
fn unknown_key_is_named_with_the_allowed_keys() {
    let text = GOOD.replace("d_model = 16", "d_model = 16\nconv_kk = true");
    assert_config_error("unknown", &text, &[], "model", "conv_kk");
    assert_config_error("unknown-allowed", &text, &[], "model", "conv_k");
}

#[test]
fn wrong_type_is_named() {
    let text = GOOD.replace("d_model = 16", "d_model = \"wide\"");
    assert_config_error("type", &text, &[], "model.d_model", "integer");
}

#[test]
fn bad_enum_value_lists_the_allowed_values() {
    let text = GOOD.replace("d_model = 16", "d_model = 16\nattention = \"softmx\"");
    assert_config_error("enum", &text, &[], "model.attention", "linear");
}

#[test]
fn impossible_task_sizes_are_rejected() {
    let text = GOOD.replace("num_kv = 2", "num_kv = 9");
    assert_config_error("sizes", &text, &[], "task.num_kv", "seq_len");
}

#[test]
fn bad_override_and_unknown_check_metric_are_rejected() {
    assert_config_error("set", GOOD, &["--set", "train.steps=0"], "train.steps", "≥ 1");
    let text = format!("{GOOD}\n[[check]]\nname = \"x\"\nmetric = \"eval.nope.acc\"\nat_least = 0.5\n");
    assert_config_error("check", &text, &[], "check[0]", "unknown split");
}

#[test]
fn good_config_runs_and_writes_a_summary() {
    let (code, stderr, exists) = run_config("good", GOOD, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(exists);
}
