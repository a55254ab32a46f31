"""Step 01 beyond the shared promises of tests/test_steps.py."""

from tests.zoo_helpers import check_file, failures


def test_vectorised_check_counts_rows_not_lines(tmp_path):
    """A long but loop-free forward is vectorised; a short loop over rows is not (the zoo's bad_loops_rows)."""
    long_body = "\n".join(f"    tmp{i} = x * {i}" for i in range(40))
    long_file = tmp_path / "long.py"
    long_file.write_text(
        "import numpy as np\ndef layernorm_forward(x, gamma, beta, eps=1e-5):\n" + long_body + "\n"
        "    mean = x.mean(axis=1, keepdims=True)\n"
        "    y = (x - mean) / np.sqrt(x.var(axis=1, keepdims=True) + eps) * gamma + beta\n"
        "    return y, None\n"
    )
    report = check_file("01", long_file)
    assert report.passed, failures(report)
