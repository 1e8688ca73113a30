localrules:
    resolve_block,
    resolve_config,


rule resolve_block:
    output:
        f"{RESULTS}/config/{{block}}.yaml",
    params:
        resolved=resolved_block,
    log:
        f"{RESULTS}/logs/resolve_block/{{block}}.log",
    run:
        from frugaldiff.io import write_yaml

        write_yaml(output[0], params.resolved)


rule resolve_config:
    output:
        run_path("config.yaml"),
    params:
        resolved=resolved_run,
    log:
        run_path("logs/resolve_config.log"),
    run:
        from frugaldiff.io import write_yaml

        write_yaml(output[0], params.resolved)


rule prepare_data:
    input:
        f"{RESULTS}/config/data.yaml",
    output:
        train=f"{DATA}/train.npz",
        test=f"{DATA}/test.npz",
        meta=f"{DATA}/meta.json",
    params:
        download_dir=f"{CACHE}/downloads",
    log:
        f"{RESULTS}/logs/prepare_data.log",
    conda:
        ENVIRONMENT
    threads: resources_for("prepare", "cpus")
    resources:
        **job_resources("prepare"),
    shell:
        "exec frugaldiff --threads {threads} prepare-data"
        " --config {input}"
        " --train-out {output.train}"
        " --test-out {output.test}"
        " --meta-out {output.meta}"
        " --download-dir {params.download_dir}"
        " > {log} 2>&1"
