#include "corio/detail/affinity.hpp"

#include <pthread.h>

namespace corio::detail {
namespace {
thread_local bool t_pinned = false;
thread_local cpu_set_t t_unpinned;
}  // namespace

void note_pinned(const cpu_set_t& unpinned) noexcept {
    t_unpinned = unpinned;
    t_pinned = true;
}

void forget_pinned() noexcept { t_pinned = false; }

const cpu_set_t* unpinned_affinity() noexcept { return t_pinned ? &t_unpinned : nullptr; }

UnpinnedWhile::UnpinnedWhile() noexcept {
    if (!t_pinned || ::pthread_getaffinity_np(::pthread_self(), sizeof pinned_, &pinned_) != 0) return;
    changed_ = ::pthread_setaffinity_np(::pthread_self(), sizeof t_unpinned, &t_unpinned) == 0;
}

UnpinnedWhile::~UnpinnedWhile() {
    if (changed_) ::pthread_setaffinity_np(::pthread_self(), sizeof pinned_, &pinned_);
}

}  // namespace corio::detail
