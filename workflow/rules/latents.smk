# The latent space of the paper tiers (docs/speed.md (b), docs/microdit.md (i)): a split is encoded once
# by the diffusers AutoencoderKL of data.latent into posterior mean/std for each image and its
# mirror; training reads them (TRAIN_INPUT in common.smk), sampling decodes with the same VAE.
# The content-keyed cache under results/cache/latents/ lets a re-run skip the VAE.


rule encode_latents:
    input:
        config=f"{RESULTS}/config/data.yaml",
        data=f"{DATA}/{{split}}.npz",
    output:
        latents=f"{DATA}/latents/{{split}}.npz",
        meta=f"{DATA}/latents/{{split}}.json",
    params:
        cache_dir=f"{CACHE}/latents",
    log:
        f"{RESULTS}/logs/encode_latents/{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/encode_latents/{{split}}.tsv"
    conda:
        ENVIRONMENT
    threads: resources_for("encode", "cpus")
    resources:
        **job_resources("encode"),
    shell:
        "exec frugaldiff --threads {threads} encode-latents"
        " --config {input.config}"
        " --data {input.data}"
        " --cache-dir {params.cache_dir}"
        " --out {output.latents}"
        " --meta-out {output.meta}"
        " > {log} 2>&1"
