// Umbrella include of the bitnetmcu inference engine (freestanding, header-only, C++17).
#pragma once
#include "kernels/activation.hpp"
#include "kernels/arith.hpp"
#include "kernels/conv.hpp"
#include "kernels/dense.hpp"
#include "kernels/dense_ref.hpp"
#include "layers.hpp"
#include "layout.hpp"
#include "model.hpp"
#include "schemes.hpp"
#include "targets.hpp"
#include "model_file.hpp"
#include "preprocess.hpp"
