"""A working group adds an indicator and releases the catalogue; nodes run it end to end.

`emsbench specs new` writes a new indicator next to the catalogue; two of three approvers
sign the release (`specs release`, `specs approve`); a node configured with that release
and the approvers file computes it and the hub accepts the submission with the new
indicator in it. The same release with one signature is refused by the node before it
reads any data. Sweden stays on the earlier release (the packaged catalogue), which the hub
still accepts: the report shows the new indicator for Norway only, and every figure under
the release it was computed with.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

from emsbench.cli import main
from emsbench.demo import free_port, start_hub, stop_process, write_hub_config
from emsbench.specs import catalogue_sha256, default_spec_dir, load_specs
from hub.catalogues import release_name
from hub.config import load_hub_config
from hub.signing import load_or_create_hub_key, public_key_path
from hub.source import open_source
from hub.trust_file import write_registry
from node.config import NodeConfig, write_node_config
from node.keys import keygen
from node.synth.generator import generate

YEAR = 2025
NEW = "2099.1"  # the working group's new release, after every release of the repository


def test_new_indicator_released_by_two_of_three_runs_through_node_and_hub(
        tmp_path: Path, prefect_harness: None) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(default_spec_dir(), specs, ignore=shutil.ignore_patterns("*.py"))
    assert main(["specs", "new", "WG-NEW", "--dir", str(specs)]) == 0
    approvers = [tmp_path / f"approver{i}.pem" for i in range(3)]
    lines = ["threshold = 2"]
    for i, path in enumerate(approvers):
        _, pub = keygen(path)
        lines += ["[[approver]]", f'name = "approver {i + 1}"', f'key = "{pub}"']
    (tmp_path / "approvers.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    one, two = tmp_path / "one-signature.json", tmp_path / "release.json"
    assert main(["specs", "release", "--name", NEW, "--dir", str(specs),
                 "--key", str(approvers[0]), "--out", str(two)]) == 0
    assert (specs / "releases" / f"{NEW}.json").is_file()  # now in the release history
    shutil.copyfile(two, one)  # as the first approver left it: one signature
    assert main(["specs", "approve", "--release", str(two), "--key", str(approvers[2])]) == 0
    assert main(["specs", "check-release", "--release", str(two), "--approvers",
                 str(tmp_path / "approvers.toml"), "--dir", str(specs)]) == 0
    assert main(["specs", "check-release", "--release", str(one), "--approvers",
                 str(tmp_path / "approvers.toml"), "--dir", str(specs)]) == 2

    port = free_port()
    hub_config = write_hub_config(tmp_path / "hub", port)
    with hub_config.open("a", encoding="utf-8") as fh:
        fh.write(f'specs = "{specs}"\nearlier_specs = ["{default_spec_dir()}"]\n')
    hub_key = tmp_path / "hub" / "hub-key.pem"
    load_or_create_hub_key(hub_key)
    node = tmp_path / "NO"
    node.mkdir()
    generate("NO", YEAR, node / "data.parquet", rows=3000, seed=7)
    _, pub = keygen(node / "NO.pem")
    sweden = tmp_path / "SE"
    sweden.mkdir()
    generate("SE", YEAR, sweden / "data.parquet", rows=3000, seed=8)
    _, se_pub = keygen(sweden / "SE.pem")
    write_node_config(sweden / "node.toml", NodeConfig(
        review=False, country="SE", year=YEAR, data=Path("data.parquet"), key=Path("SE.pem"),
        outbox=Path("outbox"), hub_url=f"http://127.0.0.1:{port}",
        hub_key=public_key_path(hub_key)))  # the packaged catalogue, its latest release
    write_registry(tmp_path / "hub" / "trust.toml", {"NO": [pub], "SE": [se_pub]})
    for release, name in ((one, "short.toml"), (two, "node.toml")):
        write_node_config(node / name, NodeConfig(
            review=False, country="NO", year=YEAR, data=Path("data.parquet"), key=Path("NO.pem"),
            outbox=Path("outbox"), hub_url=f"http://127.0.0.1:{port}",
            hub_key=public_key_path(hub_key), specs=specs, release=release,
            approvers=tmp_path / "approvers.toml"))

    proc = start_hub(hub_config, port, tmp_path / "hub" / "hub.log")
    try:
        assert main(["node", "run", "--config", str(node / "short.toml")]) == 2
        assert not (node / "outbox").exists() or not any((node / "outbox").iterdir())
        assert main(["node", "run", "--config", str(node / "node.toml")]) == 0
        assert main(["node", "run", "--config", str(sweden / "node.toml")]) == 0
        source = open_source(load_hub_config(hub_config))
        records = {r.country: r for r in source.records(YEAR)}
    finally:
        stop_process(proc)
    assert '"spec_id":"WG-NEW"' in dsse_payload(records["NO"].envelope)
    assert '"spec_id":"WG-NEW"' not in dsse_payload(records["SE"].envelope)
    assert main(["hub", "report", "--config", str(hub_config), "--year", str(YEAR),
                 "--out", str(tmp_path / "report")]) == 0
    html = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    provenance = html.split('id="h-provenance"')[1]
    packaged = release_name(default_spec_dir(), catalogue_sha256(load_specs()))
    assert packaged != "unreleased"  # the packaged catalogue is recorded as a release
    assert f"<td>{NEW}</td>" in provenance.split("Norway (NO)")[1].split("</tr>")[0]
    assert f"<td>{packaged}</td>" in provenance.split("Sweden (SE)")[1].split("</tr>")[0]
    new = html.split('id="WG-NEW"')[1].split("</section>")[0]
    assert f"release {NEW}<" in new and "not submitted" in new  # Sweden's column
    assert f"release {NEW}, {packaged}<" in html.split('id="RESP-MED"')[1]


def dsse_payload(envelope_text: str) -> str:
    return base64.b64decode(json.loads(envelope_text)["payload"]).decode("utf-8")

