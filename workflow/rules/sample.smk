rule generate_samples:
    input:
        config=run_path("config.yaml"),
        ckpt=checkpoint_input,
    output:
        images=run_path("samples", SAMPLE_SET, "images.npz"),
        grid=run_path("samples", SAMPLE_SET, "grid.png"),
        meta=run_path("samples", SAMPLE_SET, "meta.json"),
    params:
        ckpt_file=checkpoint_file,
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
        " --checkpoint {params.ckpt_file}"
        " --solver {wildcards.solver}"
        " --steps {wildcards.steps}"
        " --w {wildcards.w}"
        " --out {output.images}"
        " --grid {output.grid}"
        " --meta {output.meta}"
        " > {log} 2>&1"
