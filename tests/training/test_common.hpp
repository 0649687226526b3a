// Include this instead of <catch2/catch.hpp> in tests that use LibTorch: torch's glog
// headers define their own CHECK (which aborts); Catch's must win.
#pragma once
#include <torch/torch.h>
#undef CHECK
#include <catch2/catch.hpp>
