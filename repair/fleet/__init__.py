"""qfix across many machines: node records, grouping, fleet plans and reports, launch engines.

A layer above the single-machine pipeline (design: "Fleet as a layer above the pipeline"): nodes
exchange versioned records (``qfix.node/1``); grouping and fleet planning are pure functions over
records that reuse the core unchanged; engines (Slurm, Ansible, Ray) only build the launch and
collect records. Nothing here is imported by the core or by a single-machine command.
"""
