"""Small valid data sets for the renderer tests, written into a test's tmp_path."""

import csv
import json


def write_csv(path, rows):
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def kv_files(tmp_path, **override):
    rows = []
    for variant, values in (("standard", 1536), ("mla", 256), ("kvsplice", 128)):
        for tokens in (256, 512):
            rows.append(
                {
                    "variant": variant,
                    "dtype": "float16",
                    "tokens": tokens,
                    "batch": 1,
                    "measured_bytes": values * 2 * tokens,
                    "bytes_per_token_per_layer": values * 2,
                    "theory_bytes_per_token_per_layer": values * 2,
                    "rel_error": 0.0,
                    "model_cache_bytes": values * 2 * tokens * 12,
                }
            )
    cfg = {"d_model": 768, "n_head": 12, "n_layer": 12, "d_latent": 256, "ratio": 0.5}
    cfg.update(override)
    csv_path = write_csv(tmp_path / "cache_bytes.csv", rows)
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(cfg))
    return [str(csv_path), str(cfg_path)]
