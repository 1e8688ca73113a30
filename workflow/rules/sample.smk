rule generate_samples:
    input:
        config=run_path("config.yaml"),
        ckpts=run_path("ckpt"),
    output:
        images=run_path("samples", SAMPLE_SET, "images.npz"),
        grid=run_path("samples", SAMPLE_SET, "grid.png"),
        meta=run_path("samples", SAMPLE_SET, "meta.json"),
    log:
        run_path("logs/generate_samples", f"{SAMPLE_SET}.log"),
    benchmark:
        run_path("benchmarks/generate_samples", f"{SAMPLE_SET}.tsv")
    conda:
        ENVIRONMENT
    threads: resources_for("sample", "cpus")
    resources:
        mem_mb=resources_for("sample", "mem_mb"),
        runtime=resources_for("sample", "runtime"),
        gpu=resources_for("sample", "gpus"),
    shell:
        "frugaldiff --threads {threads} sample"
        " --config {input.config}"
        " --checkpoint {input.ckpts}/iter{wildcards.iteration}.pt"
        " --solver {wildcards.solver}"
        " --steps {wildcards.steps}"
        " --w {wildcards.w}"
        " --out {output.images}"
        " --grid {output.grid}"
        " --meta {output.meta}"
        " > {log} 2>&1"
