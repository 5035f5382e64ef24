// Ray marching with free-space skipping: one of DVGO's two CPU kernels (the other, the trilinear
// lookup, is trilinear.cpp; kernels.py builds both as one library, torch.ops.hw4_dvgo).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <vector>

namespace torch { using namespace at; }  // torch::Tensor, torch::empty, ... as in torch/extension.h

// The samples t = t_enter + (k + 1/2) step, t < t_exit, of every ray, kept where the nearest voxel of `occupied` (X, Y, Z bytes over [mlo, mhi]; empty =
// keep all) is set. Returns (pts (M, 3), t (M), ray (M), count (R)) (with count_only: the count
// alone), packed ray by ray in order along each ray: the same samples, bit for bit, as
// rays.sample_along + FreeSpaceMask.unknown (built without FMA contraction), without the dense
// (R, S) intermediate.
std::vector<torch::Tensor> march(torch::Tensor rays_o, torch::Tensor rays_d, torch::Tensor t_enter,
                                 torch::Tensor t_exit, double step, torch::Tensor occupied,
                                 torch::Tensor mlo_t, torch::Tensor mhi_t, bool count_only) {
  TORCH_CHECK(rays_o.is_contiguous() && rays_d.is_contiguous() && t_enter.is_contiguous() &&
              t_exit.is_contiguous() && rays_o.scalar_type() == torch::kFloat);
  const int64_t R = rays_o.size(0);
  const float* O = rays_o.data_ptr<float>();
  const float* D = rays_d.data_ptr<float>();
  const float* TE = t_enter.data_ptr<float>();
  const float* TX = t_exit.data_ptr<float>();
  const float st = float(step);
  const bool masked = occupied.numel() > 0;
  int64_t n[3] = {1, 1, 1};
  float mlo[3] = {0, 0, 0}, mscale[3] = {1, 1, 1};
  const uint8_t* M = nullptr;
  if (masked) {
    TORCH_CHECK(occupied.is_contiguous() && occupied.scalar_type() == torch::kByte && occupied.dim() == 3);
    for (int a = 0; a < 3; ++a) n[a] = occupied.size(a);
    auto l = mlo_t.accessor<float, 1>();
    auto h = mhi_t.accessor<float, 1>();
    for (int a = 0; a < 3; ++a) { mlo[a] = l[a]; mscale[a] = float(n[a] - 1) / (h[a] - l[a]); }
    M = occupied.data_ptr<uint8_t>();
  }
  auto keep = [&](const float* p) -> bool {
    if (!masked) return true;
    int64_t i[3];
    for (int a = 0; a < 3; ++a) {
      i[a] = int64_t(std::nearbyint((p[a] - mlo[a]) * mscale[a]));
      if (i[a] < 0 || i[a] >= n[a]) return false;
    }
    return M[(i[0] * n[1] + i[1]) * n[2] + i[2]] != 0;
  };
  auto lopt = rays_o.options().dtype(torch::kLong);
  auto count = torch::zeros({R}, lopt);
  int64_t* CNT = count.data_ptr<int64_t>();
  // pass 1: how many samples each ray keeps
  at::parallel_for(0, R, 64, [&](int64_t b, int64_t e) {
    float p[3];
    for (int64_t r = b; r < e; ++r) {
      int64_t c = 0;
      for (int64_t k = 0;; ++k) {
        float t = TE[r] + (float(k) + 0.5f) * st;
        if (!(t < TX[r])) break;
        for (int a = 0; a < 3; ++a) p[a] = O[3 * r + a] + D[3 * r + a] * t;
        c += keep(p);
      }
      CNT[r] = c;
    }
  });
  if (count_only) {
    auto none = torch::empty({0}, rays_o.options());
    return {none.view({0, 3}), none, torch::empty({0}, lopt), count};
  }
  std::vector<int64_t> start(R + 1, 0);
  for (int64_t r = 0; r < R; ++r) start[r + 1] = start[r] + CNT[r];
  const int64_t total = start[R];
  auto pts = torch::empty({total, 3}, rays_o.options());
  auto ts = torch::empty({total}, rays_o.options());
  auto ray = torch::empty({total}, lopt);
  float* P = pts.data_ptr<float>();
  float* T = ts.data_ptr<float>();
  int64_t* RY = ray.data_ptr<int64_t>();
  // pass 2: write them
  at::parallel_for(0, R, 64, [&](int64_t b, int64_t e) {
    float p[3];
    for (int64_t r = b; r < e; ++r) {
      int64_t j = start[r];
      for (int64_t k = 0;; ++k) {
        float t = TE[r] + (float(k) + 0.5f) * st;
        if (!(t < TX[r])) break;
        for (int a = 0; a < 3; ++a) p[a] = O[3 * r + a] + D[3 * r + a] * t;
        if (!keep(p)) continue;
        P[3 * j] = p[0]; P[3 * j + 1] = p[1]; P[3 * j + 2] = p[2];
        T[j] = t;
        RY[j] = r;
        ++j;
      }
    }
  });
  return {pts, ts, ray, count};
}

TORCH_LIBRARY_FRAGMENT(hw4_dvgo, m) {
  m.def("march", &march);        // ray marching with free-space skipping
}
