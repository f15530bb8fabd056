"""The per-frame schedule parser shared by Dependency Noise (lambda_i) and Temporal Momentum
Attention (mu_i): samplers/frame_schedule.py."""
import pytest

from training_free_video.samplers.frame_schedule import FrameSchedule, parse_frame_schedule


def parse(text, **kw):
    kw = {"input_name": "some_schedule", **kw}
    return parse_frame_schedule(text, **kw)


def test_empty_means_no_schedule():
    for text in ("", "   ", "\n", None):
        assert parse(text) is None


def test_lists_repeat_the_last_value_and_drop_extra_values():
    s = parse("0.01, 0.02,0.05")
    assert s == FrameSchedule((0.01, 0.02, 0.05)) and not s.ramp
    assert s.resolve(5) == [0.01, 0.02, 0.05, 0.05, 0.05]
    assert s.resolve(2) == [0.01, 0.02]
    assert s.resolve(0) == []
    assert parse("0.3").resolve(4) == [0.3] * 4
    assert parse("1e-2, 2E-2,").values == (0.01, 0.02)           # exponents; a trailing comma is skipped


def test_linear_ramp():
    s = parse(" 0.0 : 1.0 ")
    assert s.ramp and s.values == (0.0, 1.0)
    assert s.resolve(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert s.resolve(1) == [0.0]
    assert parse("0.9:0.5").resolve(3) == pytest.approx([0.9, 0.7, 0.5])
    assert str(s) == "0:1" and str(parse("0.5, 1")) == "0.5, 1"
    assert parse("0.2:0.2").is_constant() and not s.is_constant() and parse("0.4").is_constant()


@pytest.mark.parametrize("text,match", [
    ("0.1, abc", r"'abc' is not a number"),
    ("0.1; 0.2", r"'0.1; 0.2' is not a number"),
    ("0.1:0.2:0.3", r"'0.1:0.2:0.3' is not a ramp 'start:end'"),
    ("0.1:0.2, 0.3", r"'0.1:0.2, 0.3' is not a ramp 'start:end'"),
    ("x:0.2", r"'x' is not a number"),
    ("0.1, nan", r"'nan' is not a finite number"),
    ("inf", r"'inf' is not a finite number"),
    (",,", r"',,' holds no number"),
])
def test_bad_text_names_node_input_and_fix(text, match):
    with pytest.raises(ValueError, match=r"^some_schedule: " + match) as e:
        parse(text)
    assert "Write comma-separated numbers" in str(e.value) and "'start:end'" in str(e.value)


def test_bounds():
    with pytest.raises(ValueError, match=r"^kl_lambda_schedule: lambda_i = -0.01 is out of range: "
                                         r"each lambda_i must be a number >= 0"):
        parse_frame_schedule("0.01, -0.01", input_name="kl_lambda_schedule", minimum=0.0, what="lambda_i")
    kw = {"input_name": "momentum_schedule", "minimum": 0.0, "maximum": 1.0,
          "what": "mu_i"}
    with pytest.raises(ValueError, match=r"momentum_schedule: mu_i = 1.2 is out of range: each mu_i must be a "
                                         r"number >= 0 and <= 1"):
        parse_frame_schedule("0.5:1.2", **kw)
    with pytest.raises(ValueError, match=r"mu_i = -0.5 is out of range"):
        parse_frame_schedule("-0.5, 0.9", **kw)
    assert parse_frame_schedule("0, 1", **kw).values == (0.0, 1.0)      # bounds are inclusive
    with pytest.raises(ValueError, match="expected text"):
        parse(0.5)


# --------------------------------------------------------------------------- decimal commas (issue 14, edge 5)

@pytest.mark.parametrize("text,pair", [
    ("0,01", "0,01"), ("1,5", "1,5"), ("10,20", "10,20"), ("0,01, 0,02", "0,01"), ("0.5,1,2", "1,2"),
    ("-0,5", "-0,5"), ("0,5:0,9", "0,5"), ("1,2,3", "1,2"),
])
def test_decimal_comma_is_refused_with_the_fix(text, pair):
    """A comma directly between two digits, with no dot or exponent in either number, reads as a
    decimal comma or as a separator: refused, naming the input, the two readings and the fix (the
    node adds its name, nodes/errors.py; before: "0,01" parsed as the two values [0, 1] with no error)."""
    for name, kw in (("kl_lambda_schedule", {"minimum": 0.0, "what": "lambda_i"}),
                     ("momentum_schedule", {"minimum": 0.0, "maximum": 1.0, "what": "mu_i"})):
        with pytest.raises(ValueError) as e:
            parse_frame_schedule(text, input_name=name, **kw)
        msg = str(e.value)
        assert msg.startswith(f"{name}: {text!r} is ambiguous: the comma in '{pair}' reads as a decimal comma")
        assert "Use a dot for decimals and a comma followed by a space between values" in msg


@pytest.mark.parametrize("text", ["0, 01", "0.01,005", "01"])
def test_leading_zero_value_is_refused(text):
    with pytest.raises(ValueError, match=r"^s: .* is ambiguous: '0+[0-9]+' has a leading zero .*Use a dot for decimals"):
        parse_frame_schedule(text, input_name="s")


@pytest.mark.parametrize("text,values", [
    ("0.01,0.02", (0.01, 0.02)), ("0.5,1", (0.5, 1.0)), ("1,0.5", (1.0, 0.5)), ("1e-2,2e-2", (0.01, 0.02)),
    ("0, 1", (0.0, 1.0)), ("0 ,1", (0.0, 1.0)), ("2", (2.0,)), ("0.01, 0.01, 2, 0.01", (0.01, 0.01, 2.0, 0.01)),
    ("0, 0.98, 0.98, 0.9", (0.0, 0.98, 0.98, 0.9)), ("10, 20", (10.0, 20.0)), ("0.0", (0.0,)),
])
def test_unambiguous_lists_still_parse(text, values):
    assert parse(text).values == values
