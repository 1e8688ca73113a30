rule reference_stats:
    input:
        config=f"{RESULTS}/config/evaluation.yaml",
        data=f"{DATA}/{{split}}.npz",
        meta=f"{DATA}/meta.json",
    output:
        f"{RESULTS}/reference/{DATASET}-{{split}}.npz",
    params:
        cache_dir=f"{CACHE}/inception",
    log:
        f"{RESULTS}/logs/reference_stats/{DATASET}-{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/reference_stats/{DATASET}-{{split}}.tsv"
    conda:
        ENVIRONMENT
    threads: resources_for("evaluate", "cpus")
    resources:
        **job_resources("evaluate"),
    shell:
        "exec frugaldiff --threads {threads} reference"
        " --config {input.config}"
        " --data {input.data}"
        " --data-meta {input.meta}"
        " --cache-dir {params.cache_dir}"
        " --out {output}"
        " > {log} 2>&1"


# FID/KID of as many real images of the other split as a sample set has samples: the best a
# perfect generator can expect at this N (printed beside every study's FIDs).
rule data_floor:
    input:
        config=f"{RESULTS}/config/evaluation.yaml",
        data=f"{DATA}/{FLOOR_SPLIT}.npz",
        reference=f"{RESULTS}/reference/{DATASET}-{TIER.evaluation.reference_split}.npz",
    output:
        FLOOR,
    params:
        cache_dir=f"{CACHE}/inception",
    log:
        f"{RESULTS}/logs/data_floor/{DATASET}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data_floor/{DATASET}.tsv"
    conda:
        ENVIRONMENT
    threads: resources_for("evaluate", "cpus")
    resources:
        **job_resources("evaluate"),
    shell:
        "exec frugaldiff --threads {threads} floor"
        " --config {input.config}"
        " --data {input.data}"
        " --reference {input.reference}"
        " --cache-dir {params.cache_dir}"
        " --out {output}"
        " > {log} 2>&1"


rule compute_metrics:
    input:
        config=run_path("config.yaml"),
        samples=run_path("samples", SAMPLE_SET, "images.npz"),
        meta=run_path("samples", SAMPLE_SET, "meta.json"),
        reference=reference_for_run,
    output:
        run_path("metrics", f"{SAMPLE_SET}.json"),
    params:
        cache_dir=f"{CACHE}/inception",
    log:
        run_path("logs/compute_metrics", f"{SAMPLE_SET}.log"),
    benchmark:
        run_path("benchmarks/compute_metrics", f"{SAMPLE_SET}.tsv")
    conda:
        ENVIRONMENT
    threads: resources_for("evaluate", "cpus")
    resources:
        **job_resources("evaluate"),
    shell:
        "exec frugaldiff --threads {threads} evaluate"
        " --config {input.config}"
        " --samples {input.samples}"
        " --sample-meta {input.meta}"
        " --reference {input.reference}"
        " --cache-dir {params.cache_dir}"
        " --out {output}"
        " > {log} 2>&1"
