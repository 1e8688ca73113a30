rule train_model:
    input:
        config=run_path("config.yaml"),
        data=TRAIN_INPUT,
        init=init_checkpoint,
    output:
        ckpts=directory(run_path("ckpt")),
        metrics=run_path("train/metrics.jsonl"),
        summary=run_path("train/summary.json"),
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
        **job_resources("train"),
    shell:
        "exec frugaldiff --threads {threads} train"
        " --config {input.config}"
        " --data {input.data}"
        " --state-dir {params.state_dir}"
        " --ckpt-dir {output.ckpts}"
        " --metrics-out {output.metrics}"
        " --summary-out {output.summary}"
        " --nproc {resources.gpu}"
        " > {log} 2>&1"


rule halve_steps:
    input:
        config=run_path("config.yaml"),
        data=TRAIN_INPUT,
        teacher=halving_teacher_input,
    output:
        ckpt=run_path("halving/n{n}/ckpt.pt"),
        metrics=run_path("halving/n{n}/metrics.jsonl"),
        summary=run_path("halving/n{n}/summary.json"),
    params:
        # Undeclared on purpose: resumable state survives a failed or preempted job.
        state_dir=run_path("halving/n{n}/state"),
        teacher_file=halving_teacher,
    log:
        run_path("logs/halve_steps/n{n}.log"),
    benchmark:
        run_path("benchmarks/halve_steps/n{n}.tsv")
    conda:
        ENVIRONMENT
    threads: resources_for("train", "cpus")
    resources:
        **job_resources("train"),
    shell:
        "exec frugaldiff --threads {threads} halve"
        " --config {input.config}"
        " --data {input.data}"
        " --teacher {params.teacher_file}"
        " --student-steps {wildcards.n}"
        " --state-dir {params.state_dir}"
        " --out {output.ckpt}"
        " --metrics-out {output.metrics}"
        " --summary-out {output.summary}"
        " --nproc {resources.gpu}"
        " > {log} 2>&1"
