from finch.system import Accelerator, hardware_profile


def test_cpu_profile_follows_native_bf16():
    assert hardware_profile([], cpu_bf16=True, mps=False, bnb=True).dtype == "bfloat16"
    profile = hardware_profile([], cpu_bf16=False, mps=False, bnb=True)
    assert (profile.device, profile.dtype, profile.qlora_possible) == ("cpu", "float32", False)


def test_gpu_profiles():
    a100 = Accelerator("cuda", "A100", 80.0, bf16=True)
    t4 = Accelerator("cuda", "T4", 16.0, bf16=False)
    one = hardware_profile([a100], cpu_bf16=False, mps=False, bnb=True)
    assert (one.device, one.dtype, one.training_launcher, one.qlora_possible) == ("cuda", "bfloat16", "single", True)
    two = hardware_profile([t4, t4], cpu_bf16=False, mps=False, bnb=False)
    assert (two.dtype, two.training_launcher, two.qlora_possible) == ("float16", "accelerated", False)
    rocm = hardware_profile([Accelerator("rocm", "MI300", 192.0, True)], cpu_bf16=False, mps=False, bnb=True)
    assert rocm.qlora_possible is False


def test_mps_profile():
    profile = hardware_profile([], cpu_bf16=False, mps=True, bnb=False)
    assert (profile.device, profile.dtype) == ("mps", "float16")
