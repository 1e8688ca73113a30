rule train_model:
    input:
        config=run_path("config.yaml"),
        data=f"{RESULTS}/data/cifar10/train.npz",
        init=init_checkpoint,
    output:
        ckpts=directory(run_path("ckpt")),
        metrics=run_path("train/metrics.jsonl"),
    params:
        # Undeclared on purpose: resumable state survives a failed or preempted job.
        state_dir=run_path("state"),
    log:
        run_path("logs/train_model.log"),
    benchmark:
        run_path("benchmarks/train_model.tsv")
    conda:
        ENVIRONMENT
    threads: resources_for("train", "cpus")
    resources:
        mem_mb=resources_for("train", "mem_mb"),
        runtime=resources_for("train", "runtime"),
        gpu=resources_for("train", "gpus"),
    shell:
        "frugaldiff --threads {threads} train"
        " --config {input.config}"
        " --data {input.data}"
        " --state-dir {params.state_dir}"
        " --ckpt-dir {output.ckpts}"
        " --metrics-out {output.metrics}"
        " > {log} 2>&1"
