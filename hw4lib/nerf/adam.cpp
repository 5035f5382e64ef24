// DVGO v2's masked Adam on the rows of a grid a step touched: one of DVGO's CPU kernels
// (kernels.py builds them as one library). For each listed voxel row and channel with a nonzero
// gradient: Adam's moments and parameter update in torch's form; zero-gradient entries and
// unlisted rows are left alone. One pass over the touched rows instead of torch's gathers,
// elementwise temporaries and scatters.
#include <ATen/core/Tensor.h>
#include <torch/library.h>
#include <ATen/Parallel.h>
#include <cmath>

void masked_adam_rows(at::Tensor param, at::Tensor exp_avg, at::Tensor exp_avg_sq, at::Tensor idx,
                      at::Tensor rows, int64_t step, double lr, double beta1, double beta2,
                      double eps) {
  TORCH_CHECK(param.is_contiguous() && exp_avg.is_contiguous() && exp_avg_sq.is_contiguous());
  TORCH_CHECK(rows.is_contiguous() && idx.is_contiguous() && rows.dim() == 2);
  TORCH_CHECK(param.scalar_type() == at::kFloat && rows.scalar_type() == at::kFloat);
  const int64_t K = rows.size(0), C = rows.size(1);
  TORCH_CHECK(param.numel() % C == 0 && idx.numel() == K);
  const float b1 = float(beta1), b2 = float(beta2), e = float(eps);
  const float step_size = float(lr / (1.0 - std::pow(beta1, double(step))));
  const float bc2_sqrt = float(std::sqrt(1.0 - std::pow(beta2, double(step))));
  float* P = param.data_ptr<float>();
  float* M = exp_avg.data_ptr<float>();
  float* V = exp_avg_sq.data_ptr<float>();
  const int64_t* I = idx.data_ptr<int64_t>();
  const float* G = rows.data_ptr<float>();
  at::parallel_for(0, K, 4096, [&](int64_t b, int64_t end) {
    for (int64_t q = b; q < end; ++q) {
      const int64_t o = I[q] * C;
      for (int64_t ch = 0; ch < C; ++ch) {
        const float g = G[q * C + ch];
        if (g == 0.f) continue;
        const float m = b1 * M[o + ch] + (1.f - b1) * g;
        const float v = b2 * V[o + ch] + (1.f - b2) * g * g;
        M[o + ch] = m;
        V[o + ch] = v;
        P[o + ch] -= step_size * m / (std::sqrt(v) / bc2_sqrt + e);
      }
    }
  });
}

TORCH_LIBRARY_FRAGMENT(hw4_dvgo, m) {
  m.def("masked_adam_rows", &masked_adam_rows);  // Adam on the touched rows of a grid
}
