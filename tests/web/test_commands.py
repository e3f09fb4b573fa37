"""``flamefit serve``'s command line: options reach ServeOptions; bad values are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from flamefit.cli import EXIT_USAGE, build_parser, main
from flamefit.utils import UsageError
from flamefit.web.commands import serve, serve_options
from flamefit.web.options import ServeOptions


def test_defaults_are_local_and_from_serve_options():
    options = serve_options(build_parser().parse_args(["serve"]))
    assert options == ServeOptions()
    assert options.host == "127.0.0.1" and options.port == 8000 and options.workers == 1


def test_options_reach_the_server():
    args = build_parser().parse_args([
        "serve", "--host", "0.0.0.0", "--port", "9001", "--workers", "3", "--data-dir", "d",
        "--max-upload-mb", "5", "--max-megapixels", "12.5", "--keep-hours", "2", "--iters", "10,20",
        "--resolution", "128", "--device", "cpu", "--queue-size", "7", "--batch-size", "4"])
    options = serve_options(args)
    assert (options.host, options.port, options.workers, options.data_dir) == ("0.0.0.0", 9001, 3, Path("d"))
    assert options.max_upload_bytes == 5 * 2**20 and options.max_pixels == 12_500_000
    assert (options.keep_hours, options.rigid_steps, options.full_steps) == (2.0, 10, 20)
    assert (options.resolution, options.device, options.queue_size, options.batch_size) == (128, "cpu", 7, 4)


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--keep-hours", "0"], ["--max-upload-mb", "-1"],
                                  ["--iters", "0,0"], ["--port", "x"]])
def test_bad_values_are_usage_errors(argv, capsys):
    assert main(["serve", *argv]) == EXIT_USAGE
    assert "error" in capsys.readouterr().err


def test_out_of_range_options_are_refused_before_serving():
    with pytest.raises(UsageError, match="--port"):
        serve(ServeOptions(port=70000))
    with pytest.raises(UsageError, match="--batch-size"):
        serve(ServeOptions(batch_size=-1))
