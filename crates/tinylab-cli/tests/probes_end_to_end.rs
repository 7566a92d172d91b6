//! `tinylab run` with `[[probe]]` entries on a tiny CAT model: figures and tables appear,
//! mechanism checks are evaluated, `collect` and `plot` read the run.

use std::process::Command;

const CAT: &str = r#"
name = "tiny_cat"
seed = 0
[task]
kind = "mqar"
vocab_size = 64
seq_len = 32
num_kv = 4
[model]
d_model = 32
qk_norm = "l2"
conv_q = true
conv_k = true
conv_v = true
[train]
steps = 400
batch_size = 32
eval_every = 200
log_every = 50
checkpoint_every = 0
optimizer = { lr = 3e-3 }
schedule = { kind = "cosine", warmup_steps = 20 }
[[eval]]
name = "test"
samples = 256
[[probe]]
what = "conv"
[[probe]]
what = "attention"
eval = "test"
[[probe]]
what = "spectrum"
[[probe]]
what = "ablate"
[[check]]
name = "learns"
metric = "eval.test.acc"
at_least = 0.9
[[check]]
name = "key filter one lag further back than the value filter"
metric = "probe.conv.l0_kv_lag_gap"
at_least = 1
at_most = 1
[[check]]
name = "attention on the retrieval slot"
metric = "probe.attention.l0h0_mass_on_retrieval_slot"
at_least = 0.5
"#;

#[test]
fn run_with_probes_writes_figures_and_checks_the_mechanism() {
    let root = std::env::temp_dir().join(format!("tinylab-probes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let cfg = root.join("cat.toml");
    std::fs::write(&cfg, CAT).unwrap();
    let run = root.join("run");
    let bin = env!("CARGO_BIN_EXE_tinylab");
    let out = Command::new(bin)
        .args(["run", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "-q"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    for f in [
        "plots/accuracy.png",
        "plots/loss.png",
        "plots/conv_layer0.png",
        "plots/attention.png",
        "plots/spectrum.png",
    ] {
        let bytes = std::fs::read(run.join(f)).unwrap_or_else(|_| panic!("{f} missing"));
        assert!(bytes.starts_with(b"\x89PNG"), "{f} is not a PNG");
    }
    for f in ["probes/conv.json", "probes/attention.json", "probes/spectrum.json", "probes/ablate.json"] {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join(f)).unwrap()).unwrap();
        assert!(v.get("step").is_some(), "{f}");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    assert!(
        summary["final_metrics"]["probe.ablate.l0h0_zero_drop"].as_f64().unwrap() > 0.5,
        "the only head carries recall"
    );
    assert_eq!(summary["checks"].as_array().unwrap().len(), 3);
    assert!(summary["all_passed"].as_bool().unwrap(), "{stdout}");

    // collect and plot read the run directory.
    let csv = root.join("all.csv");
    assert!(Command::new(bin)
        .args(["collect", root.to_str().unwrap(), "-o", csv.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    assert!(std::fs::read_to_string(&csv)
        .unwrap()
        .starts_with("run_id,run_dir,name,seed,step,split,metric,value"));
    let svg = root.join("curves.svg");
    let st = Command::new(bin)
        .args(["plot", run.to_str().unwrap(), "-m", "eval.*.acc", "-o", svg.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(std::fs::read_to_string(&svg).unwrap().contains("eval.test.acc"));
    std::fs::remove_dir_all(&root).unwrap();
}
