rule generate_samples:
    input:
        config=run_path("config.yaml"),
        ckpt=checkpoint_input,
    output:
        images=run_path("samples", SAMPLE_SET, "images.npz"),
        grid=report(
            run_path("samples", SAMPLE_SET, "grid.png"),
            caption="../report/sample_grid.rst",
            category="sample grids",
            subcategory="{run}",
            labels={"run": "{run}", "model": "{ckpt}", "sampler": "{solver} {steps} w={w}"},
        ),
        meta=run_path("samples", SAMPLE_SET, "meta.json"),
    params:
        ckpt_file=checkpoint_file,
        # Undeclared on purpose: finished batches survive a preempted job (resume by shard).
        shard_dir=run_path("samples", SAMPLE_SET, "shards"),
    log:
        run_path("logs/generate_samples", f"{SAMPLE_SET}.log"),
    benchmark:
        run_path("benchmarks/generate_samples", f"{SAMPLE_SET}.tsv")
    conda:
        ENVIRONMENT
    threads: resources_for("sample", "cpus")
    resources:
        **job_resources("sample"),
    shell:
        "exec frugaldiff --threads {threads} sample"
        " --config {input.config}"
        " --checkpoint {params.ckpt_file}"
        " --solver {wildcards.solver}"
        " --steps {wildcards.steps}"
        " --w {wildcards.w}"
        " --out {output.images}"
        " --grid {output.grid}"
        " --meta {output.meta}"
        " --shard-dir {params.shard_dir}"
        " > {log} 2>&1"
