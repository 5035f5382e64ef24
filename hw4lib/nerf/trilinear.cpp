// The trilinear lookup of a dense channels-last voxel grid, forward and backward: one of DVGO's
// two CPU kernels (the other, the ray marcher, is march.cpp; kernels.py builds both as one library).
//
// The grid is (X, Y, Z, C) contiguous float32 spanning the box [lo, hi] with voxel centres at
// the corners (align_corners=True semantics). Points are world coordinates (N, 3); a point
// outside the box is clamped onto it. Forward gathers 8 corner rows and blends them; backward
// scatters the blended gradient back. Backward is the expensive part: given points ordered by
// voxel bucket (`order`), it runs in parallel over chunks whose voxel ranges are disjoint, so two
// threads never write the same voxel (even chunks first, then odd ones); otherwise serially.
// Only the headers the kernels use (not torch/extension.h with pybind11 and all of torch): the
// first-use build takes a third of the time. The ops are registered with the dispatcher and
// called as torch.ops.hw4_dvgo.<name>.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <algorithm>
#include <utility>
#include <vector>

namespace torch { using namespace at; }  // torch::Tensor, torch::empty, ... as in torch/extension.h

namespace {

struct Corner {
  int64_t base;   // flat index of the (x0, y0, z0) corner
  float fx, fy, fz;
};

inline Corner locate(const float* p, const float* lo, const float* scale, const int64_t* n) {
  Corner c;
  int64_t i[3];
  float f[3];
  for (int a = 0; a < 3; ++a) {
    float u = (p[a] - lo[a]) * scale[a];
    float top = float(n[a] - 1);
    u = u < 0.f ? 0.f : (u > top ? top : u);
    int64_t k = int64_t(std::floor(u));
    if (k > n[a] - 2) k = n[a] - 2;
    if (k < 0) k = 0;
    i[a] = k;
    f[a] = u - float(k);
  }
  c.base = (i[0] * n[1] + i[1]) * n[2] + i[2];
  c.fx = f[0]; c.fy = f[1]; c.fz = f[2];
  return c;
}

// the 8 trilinear weights of a located point, corner order (x, y, z) = 000, 001, 010, ... 111
inline void corner_weights(const Corner& c, float* w) {
  const float gx = 1.f - c.fx, gy = 1.f - c.fy, gz = 1.f - c.fz;
  w[0] = gx * gy * gz; w[1] = gx * gy * c.fz; w[2] = gx * c.fy * gz; w[3] = gx * c.fy * c.fz;
  w[4] = c.fx * gy * gz; w[5] = c.fx * gy * c.fz; w[6] = c.fx * c.fy * gz; w[7] = c.fx * c.fy * c.fz;
}

void setup(const torch::Tensor& lo_t, const torch::Tensor& hi_t, const int64_t* n, float* lo,
           float* scale) {
  auto l = lo_t.accessor<float, 1>();
  auto h = hi_t.accessor<float, 1>();
  for (int a = 0; a < 3; ++a) {
    lo[a] = l[a];
    scale[a] = float(n[a] - 1) / (h[a] - l[a]);
  }
}

}  // namespace

torch::Tensor forward(torch::Tensor grid, torch::Tensor pts, torch::Tensor lo_t, torch::Tensor hi_t,
                      torch::Tensor perm) {
  TORCH_CHECK(grid.dim() == 4 && grid.is_contiguous() && grid.scalar_type() == torch::kFloat);
  TORCH_CHECK(pts.dim() == 2 && pts.size(1) == 3 && pts.is_contiguous() && pts.scalar_type() == torch::kFloat);
  const int64_t n[3] = {grid.size(0), grid.size(1), grid.size(2)};
  const int64_t C = grid.size(3), N = pts.size(0);
  float lo[3], scale[3];
  setup(lo_t, hi_t, n, lo, scale);
  auto out = torch::empty({N, C}, grid.options());
  const float* G = grid.data_ptr<float>();
  const float* P = pts.data_ptr<float>();
  float* O = out.data_ptr<float>();
  const int64_t* PI = perm.numel() == N ? perm.data_ptr<int64_t>() : nullptr;
  const int64_t sz = n[2] * C, sy = n[1] * n[2] * C;
  at::parallel_for(0, N, 2048, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) {
      const int64_t i = PI ? PI[j] : j;  // points are read in order j, written back to row i
      Corner c = locate(P + 3 * j, lo, scale, n);
      const float* g = G + c.base * C;
      float w[8];
      corner_weights(c, w);
      const float* r[8] = {g, g + C, g + sz, g + sz + C, g + sy, g + sy + C, g + sy + sz, g + sy + sz + C};
      float* o = O + i * C;
      for (int64_t ch = 0; ch < C; ++ch) {
        float acc = 0.f;
        for (int k = 0; k < 8; ++k) acc += w[k] * r[k][ch];
        o[ch] = acc;
      }
    }
  });
  return out;
}

static void scatter_range(float* GG, const float* P, const float* GO, const int64_t* PI,
                          int64_t b, int64_t e, const float* lo, const float* scale,
                          const int64_t* n, int64_t C) {
  const int64_t sz = n[2] * C, sy = n[1] * n[2] * C;
  for (int64_t j = b; j < e; ++j) {
    const int64_t i = PI ? PI[j] : j;  // point j (in sorted order) has gradient row i
    Corner c = locate(P + 3 * j, lo, scale, n);
    float* g = GG + c.base * C;
    float w[8];
    corner_weights(c, w);
    float* r[8] = {g, g + C, g + sz, g + sz + C, g + sy, g + sy + C, g + sy + sz, g + sy + sz + C};
    const float* go = GO + i * C;
    for (int k = 0; k < 8; ++k)
      for (int64_t ch = 0; ch < C; ++ch) r[k][ch] += w[k] * go[ch];
  }
}

// grad of the grid. `perm` (N,) visits the points sorted by base voxel and `bases` (N,) holds
// those sorted base voxels (from `order`; enables the cache-friendly parallel path), or both
// are empty (serial, input order).
torch::Tensor backward(torch::Tensor grad_out, torch::Tensor pts, torch::Tensor lo_t,
                       torch::Tensor hi_t, std::vector<int64_t> shape, torch::Tensor perm,
                       torch::Tensor bases) {
  TORCH_CHECK(grad_out.is_contiguous() && pts.is_contiguous());
  const int64_t n[3] = {shape[0], shape[1], shape[2]};
  const int64_t C = shape[3], N = pts.size(0);
  float lo[3], scale[3];
  setup(lo_t, hi_t, n, lo, scale);
  auto gg = torch::zeros({n[0], n[1], n[2], C}, grad_out.options());
  float* GG = gg.data_ptr<float>();
  const float* P = pts.data_ptr<float>();
  const float* GO = grad_out.data_ptr<float>();
  const int64_t* PI = perm.numel() == N ? perm.data_ptr<int64_t>() : nullptr;
  const int64_t T = at::get_num_threads();
  const int64_t reach = (n[1] * n[2] + n[2] + 1);  // farthest corner from the base voxel
  bool parallel = T > 1 && bases.numel() == N && N > 4096;
  std::vector<int64_t> cuts;
  if (parallel) {
    // chunks of points sorted by voxel bucket; chunks run two phases (even, odd) and the
    // chunks of one phase must touch disjoint voxel ranges [min base, max base + reach]
    const int64_t* B = bases.data_ptr<int64_t>();
    const int64_t K = 2 * T;
    for (int64_t j = 0; j <= K; ++j) cuts.push_back(N * j / K);
    std::vector<int64_t> mn(K), mx(K);
    for (int64_t j = 0; j < K; ++j) {
      int64_t a = B[cuts[j]], z = B[cuts[j]];
      for (int64_t q = cuts[j]; q < cuts[j + 1]; ++q) { a = std::min(a, B[q]); z = std::max(z, B[q]); }
      mn[j] = a; mx[j] = z + reach;
    }
    for (int64_t j = 0; j < K && parallel; ++j)
      for (int64_t k = j + 2; k < K; k += 2)
        if (!(mx[j] < mn[k] || mx[k] < mn[j])) { parallel = false; break; }
  }
  if (!parallel) {
    scatter_range(GG, P, GO, PI, 0, N, lo, scale, n, C);
    return gg;
  }
  const int64_t K = 2 * T;
  for (int64_t phase = 0; phase < 2; ++phase) {
    at::parallel_for(0, T, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        int64_t j = 2 * t + phase;
        scatter_range(GG, P, GO, PI, cuts[j], cuts[j + 1], lo, scale, n, C);
      }
    });
  }
  return gg;
}

// grad of the grid on the voxels the points touch, each once: (idx (K,) flat voxel indices,
// increasing, rows (K, C)). What a sparse scene's step needs: its points touch a few
// hundred thousand of the grid's millions of voxels, and a dense gradient would zero-fill and
// then Adam-walk them all. `slot` (V,) int32 is the caller's scratch map, all -1, and is left so.
// Threads own disjoint ranges of voxels (cut at quantiles of the points' base voxels), each
// visits every point in input order and keeps the corners in its range: a voxel's row sums
// its points in the same order whatever the number of threads, so the result is bit for bit
// the serial one.
std::vector<torch::Tensor> backward_rows(torch::Tensor grad_out, torch::Tensor pts,
                                         torch::Tensor lo_t, torch::Tensor hi_t,
                                         std::vector<int64_t> shape, torch::Tensor slot) {
  TORCH_CHECK(grad_out.is_contiguous() && pts.is_contiguous());
  TORCH_CHECK(slot.is_contiguous() && slot.scalar_type() == torch::kInt);
  const int64_t n[3] = {shape[0], shape[1], shape[2]};
  const int64_t C = shape[3], N = pts.size(0), V = n[0] * n[1] * n[2];
  TORCH_CHECK(slot.numel() == V);
  float lo[3], scale[3];
  setup(lo_t, hi_t, n, lo, scale);
  const int64_t sz = n[2], sy = n[1] * n[2];
  const int64_t off[8] = {0, 1, sz, sz + 1, sy, sy + 1, sy + sz, sy + sz + 1};
  const float* P = pts.data_ptr<float>();
  const float* GO = grad_out.data_ptr<float>();
  int32_t* S = slot.data_ptr<int32_t>();
  std::vector<Corner> cs(N);
  at::parallel_for(0, N, 4096, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) cs[j] = locate(P + 3 * j, lo, scale, n);
  });
  const int64_t T = N > 8192 ? std::max<int64_t>(1, at::get_num_threads()) : 1;
  std::vector<int64_t> cut(T + 1, 0);
  cut[T] = V;
  if (T > 1) {  // quantiles of the base voxels: each range gets about N / T points
    std::vector<int64_t> bases(N);
    for (int64_t j = 0; j < N; ++j) bases[j] = cs[j].base;
    for (int64_t t = 1; t < T; ++t) {
      std::nth_element(bases.begin(), bases.begin() + N * t / T, bases.end());
      cut[t] = std::max(cut[t - 1], bases[N * t / T]);
    }
  }
  int bits = 1;
  while ((int64_t(1) << bits) < V) ++bits;
  // per thread: its rows (in first-touch order) and their (voxel, row) pairs sorted by voxel
  std::vector<torch::Tensor> rows_t(T);
  std::vector<std::vector<std::pair<int64_t, int64_t>>> sorted_t(T);
  at::parallel_for(0, T, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      const int64_t a = cut[t], z = cut[t + 1];
      std::vector<int64_t> I;
      I.reserve(size_t(8 * N / T + 1024));
      auto rows = torch::empty({8 * N, C}, grad_out.options());
      float* RW = rows.data_ptr<float>();
      for (int64_t j = 0; j < N; ++j) {
        const Corner& c = cs[j];
        if (c.base + off[7] < a || c.base >= z) continue;
        float w[8];
        corner_weights(c, w);
        const float* go = GO + j * C;
        for (int k = 0; k < 8; ++k) {
          const int64_t v = c.base + off[k];
          if (v < a || v >= z) continue;
          int32_t s = S[v];
          if (s < 0) {
            s = S[v] = int32_t(I.size());
            std::fill(RW + int64_t(s) * C, RW + (int64_t(s) + 1) * C, 0.f);
            I.push_back(v);
          }
          float* r = RW + int64_t(s) * C;
          for (int64_t ch = 0; ch < C; ++ch) r[ch] += w[k] * go[ch];
        }
      }
      const int64_t K = int64_t(I.size());
      for (int64_t q = 0; q < K; ++q) S[I[q]] = -1;
      // in voxel order (a sparse tensor's "coalesced" form; and Adam then walks the grid in
      // order): an LSD radix sort, 11 bits a pass, O(K) where a comparison sort would cost a
      // step's time; (voxel, row) pairs move together, so every pass reads in order
      std::vector<std::pair<int64_t, int64_t>> pa(K), pb(K);
      for (int64_t q = 0; q < K; ++q) pa[q] = {I[q], q};
      for (int shift = 0; shift < bits; shift += 11) {
        std::vector<int64_t> start(2049, 0);
        for (int64_t q = 0; q < K; ++q) ++start[((pa[q].first >> shift) & 2047) + 1];
        for (int r = 0; r < 2048; ++r) start[r + 1] += start[r];
        for (int64_t q = 0; q < K; ++q) pb[start[(pa[q].first >> shift) & 2047]++] = pa[q];
        std::swap(pa, pb);
      }
      rows_t[t] = rows;
      sorted_t[t] = std::move(pa);
    }
  });
  // the ranges are in voxel order: each thread's rows go to its place in one output
  std::vector<int64_t> at_(T + 1, 0);
  for (int64_t t = 0; t < T; ++t) at_[t + 1] = at_[t] + int64_t(sorted_t[t].size());
  auto sidx = torch::empty({at_[T]}, pts.options().dtype(torch::kLong));
  auto srows = torch::empty({at_[T], C}, grad_out.options());
  int64_t* SI = sidx.data_ptr<int64_t>();
  float* SR = srows.data_ptr<float>();
  at::parallel_for(0, T, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      const float* RW = rows_t[t].data_ptr<float>();
      const auto& pa = sorted_t[t];
      for (size_t q = 0; q < pa.size(); ++q) {
        SI[at_[t] + q] = pa[q].first;
        std::copy(RW + pa[q].second * C, RW + (pa[q].second + 1) * C, SR + (at_[t] + q) * C);
      }
    }
  });
  return {sidx, srows};
}

// Counting sort of the points by voxel bucket (runs of 32 voxels along z): returns
// (perm, bases, sorted_pts) with point j of the sorted order = pts[perm[j]], base voxel bases[j].
// Buckets rather than single voxels keep the histogram small (cache-resident) and still give
// the gather/scatter its locality.
std::vector<torch::Tensor> order(torch::Tensor pts, torch::Tensor lo_t, torch::Tensor hi_t,
                                 std::vector<int64_t> shape) {
  TORCH_CHECK(pts.is_contiguous() && pts.scalar_type() == torch::kFloat);
  const int64_t n[3] = {shape[0], shape[1], shape[2]};
  const int64_t N = pts.size(0), V = n[0] * n[1] * n[2];
  const int SHIFT = 5;
  const int64_t NB = (V >> SHIFT) + 1;
  float lo[3], scale[3];
  setup(lo_t, hi_t, n, lo, scale);
  const float* P = pts.data_ptr<float>();
  auto opt = pts.options().dtype(torch::kLong);
  auto key = torch::empty({N}, opt);
  int64_t* K = key.data_ptr<int64_t>();
  at::parallel_for(0, N, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) K[i] = locate(P + 3 * i, lo, scale, n).base;
  });
  std::vector<int32_t> start(NB + 1, 0);
  for (int64_t i = 0; i < N; ++i) ++start[(K[i] >> SHIFT) + 1];
  for (int64_t v = 0; v < NB; ++v) start[v + 1] += start[v];
  auto perm = torch::empty({N}, opt), sorted = torch::empty({N}, opt);
  auto spts = torch::empty({N, 3}, pts.options());
  int64_t* PI = perm.data_ptr<int64_t>();
  int64_t* S = sorted.data_ptr<int64_t>();
  float* SP = spts.data_ptr<float>();
  for (int64_t i = 0; i < N; ++i) {
    int64_t p = start[K[i] >> SHIFT]++;
    PI[p] = i;
    S[p] = K[i];
    SP[3 * p] = P[3 * i]; SP[3 * p + 1] = P[3 * i + 1]; SP[3 * p + 2] = P[3 * i + 2];
  }
  return {perm, sorted, spts};
}

TORCH_LIBRARY(hw4_dvgo, m) {
  m.def("forward", &forward);    // trilinear lookup
  m.def("backward", &backward);  // trilinear lookup backward
  m.def("order", &order);        // counting sort of points by base voxel
  m.def("backward_rows", &backward_rows);  // trilinear lookup backward, touched voxels only
}
