// Ray marching with free-space skipping: one of DVGO's two CPU kernels (the other, the trilinear
// lookup, is trilinear.cpp; kernels.py builds both as one library, torch.ops.hw4_dvgo).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

namespace torch { using namespace at; }  // torch::Tensor, torch::empty, ... as in torch/extension.h

// torch.round's rounding (to nearest, ties to even) without nearbyint's library call (most of
// the marcher's time): adding and subtracting 1.5 * 2^23 rounds a float below 2^22 in magnitude
// in the default rounding mode; the build has no -ffast-math to fold it away.
static inline float round_even(float x) {
  if (!(std::fabs(x) < 4194304.f)) return std::nearbyint(x);
  const float y = x + 12582912.f;
  return y - 12582912.f;
}

// The samples t = t_enter + (k + 1/2) step, t < t_exit, of every ray, kept where the nearest
// voxel of the mask (`shape` X, Y, Z over [mlo, mhi]; empty = keep all) is set. The mask comes
// as bytes in 4^3 bricks, (X/4, Y/4, Z/4, 4, 4, 4) rounded up: a brick is one cache line, and
// a ray's next sample is mostly in the same one (row-major, each step along x is a new line).
// Returns (pts (M, 3), t (M), ray (M), count (R)) (with count_only: the count alone), packed
// ray by ray in order along each ray: the same samples, bit for bit, as rays.sample_along +
// FreeSpaceMask.unknown (built without FMA contraction), without the dense (R, S) intermediate.
// `blocks` (empty: none) says which blocks of `block`^3 mask voxels hold an occupied one: a
// sample in an empty block jumps to the block's far side (a sparse scene's rays cross hundreds
// of free voxels for each kept sample), never past a sample that would be kept.
std::vector<torch::Tensor> march(torch::Tensor rays_o, torch::Tensor rays_d, torch::Tensor t_enter,
                                 torch::Tensor t_exit, double step, torch::Tensor occupied,
                                 std::vector<int64_t> shape, torch::Tensor blocks, int64_t block,
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
    TORCH_CHECK(occupied.is_contiguous() && occupied.scalar_type() == torch::kByte &&
                occupied.dim() == 6 && shape.size() == 3);
    for (int a = 0; a < 3; ++a) {
      n[a] = shape[a];
      TORCH_CHECK(occupied.size(a) == (n[a] + 3) / 4 && occupied.size(a + 3) == 4, "not 4^3 bricks");
    }
    auto l = mlo_t.accessor<float, 1>();
    auto h = mhi_t.accessor<float, 1>();
    for (int a = 0; a < 3; ++a) { mlo[a] = l[a]; mscale[a] = float(n[a] - 1) / (h[a] - l[a]); }
    M = occupied.data_ptr<uint8_t>();
  }
  const int64_t nq[3] = {(n[0] + 3) / 4, (n[1] + 3) / 4, (n[2] + 3) / 4};
  const uint8_t* BK = nullptr;
  int64_t nb[3] = {1, 1, 1};
  if (masked && blocks.numel() > 0) {
    TORCH_CHECK(blocks.is_contiguous() && blocks.scalar_type() == torch::kByte && blocks.dim() == 3);
    for (int a = 0; a < 3; ++a) {
      nb[a] = blocks.size(a);
      TORCH_CHECK(nb[a] == (n[a] + block - 1) / block, "blocks do not tile the mask");
    }
    BK = blocks.data_ptr<uint8_t>();
  }
  // 1: keep; 0: drop; or -1: drop, and so is every sample before `skip_to` (an empty block)
  auto visit = [&](int64_t r, const float* p, int64_t k, int64_t& skip_to) -> int {
    if (!masked) return 1;
    int64_t i[3];
    for (int a = 0; a < 3; ++a) {
      i[a] = int64_t(round_even((p[a] - mlo[a]) * mscale[a]));
      if (i[a] < 0 || i[a] >= n[a]) return 0;
    }
    const int64_t brick = ((i[0] >> 2) * nq[1] + (i[1] >> 2)) * nq[2] + (i[2] >> 2);
    const bool unknown = M[brick * 64 + ((i[0] & 3) << 4) + ((i[1] & 3) << 2) + (i[2] & 3)] != 0;
    if (BK == nullptr) return unknown;
    int64_t bi[3];
    for (int a = 0; a < 3; ++a) bi[a] = i[a] / block;
    // the small block grid first: most samples of a sparse scene end there
    if (BK[(bi[0] * nb[1] + bi[1]) * nb[2] + bi[2]] != 0) return unknown;
    // the block holds mask indices [b B, b B + B - 1] on each axis: the ray leaves it where an
    // index coordinate crosses b B - 1/2 or b B + B - 1/2; samples short of that by a thousandth
    // of a voxel (far above a float's error here) are in the empty block and skipped
    double t_out = 1e30;
    for (int a = 0; a < 3; ++a) {
      const double d = double(D[3 * r + a]) * mscale[a];
      if (d == 0.0) continue;
      const double u_out = d > 0 ? double(bi[a] * block + block) - 0.501 : double(bi[a] * block) - 0.499;
      const double u0 = (double(O[3 * r + a]) - mlo[a]) * mscale[a];
      t_out = std::min(t_out, (u_out - u0) / d);
    }
    const double last = std::floor((t_out - double(TE[r])) / st - 0.5);
    skip_to = std::max<int64_t>(k + 1, int64_t(last) + 1);
    return -1;
  };
  auto lopt = rays_o.options().dtype(torch::kLong);
  auto count = torch::zeros({R}, lopt);
  int64_t* CNT = count.data_ptr<int64_t>();
  // sample k of ray r: its t and point (one expression, so both passes get the same bits)
  auto at_k = [&](int64_t r, int64_t k, float* p) -> float {
    const float t = TE[r] + (float(k) + 0.5f) * st;
    for (int a = 0; a < 3; ++a) p[a] = O[3 * r + a] + D[3 * r + a] * t;
    return t;
  };
  // ray r's kept samples in order along it, each k given to keep(k)
  auto walk = [&](int64_t r, auto&& keep) {
    float p[3];
    for (int64_t k = 0;;) {
      const float t = at_k(r, k, p);
      if (!(t < TX[r])) break;
      int64_t next = k + 1;
      if (visit(r, p, k, next) == 1) keep(k);
      k = next;
    }
  };
  // pass 1: walk each ray once (the marcher's cost), counting its kept samples and keeping
  // their indices k (each range of rays in a piece of its own), so that pass 2 writes them
  // without a mask lookup; count_only keeps nothing (it counts all of a scene's rays)
  const int64_t keep_n = count_only ? 0 : R;
  std::vector<int64_t> first(keep_n), piece_of(keep_n);
  std::vector<std::vector<int32_t>> pieces;
  std::mutex pieces_mutex;
  at::parallel_for(0, R, 64, [&](int64_t b, int64_t e) {
    std::vector<int32_t> ks;
    for (int64_t r = b; r < e; ++r) {
      int64_t c = 0;
      if (!count_only) first[r] = int64_t(ks.size());
      walk(r, [&](int64_t k) {
        ++c;
        if (!count_only) ks.push_back(int32_t(k));
      });
      CNT[r] = c;
    }
    if (count_only) return;
    int64_t id;
    {
      std::lock_guard<std::mutex> lock(pieces_mutex);
      id = int64_t(pieces.size());
      pieces.push_back(std::move(ks));
    }
    for (int64_t r = b; r < e; ++r) piece_of[r] = id;
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
      const int32_t* ks = pieces[piece_of[r]].data() + first[r];
      for (int64_t i = 0, j = start[r]; i < CNT[r]; ++i, ++j) {
        T[j] = at_k(r, ks[i], p);
        P[3 * j] = p[0]; P[3 * j + 1] = p[1]; P[3 * j + 2] = p[2];
        RY[j] = r;
      }
    }
  });
  return {pts, ts, ray, count};
}

TORCH_LIBRARY_FRAGMENT(hw4_dvgo, m) {
  m.def("march", &march);        // ray marching with free-space skipping
}
