// A move-only `void()` callable (std::function needs copyable targets; ours own Coros).
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

#include "corio/detail/frame_alloc.hpp"

namespace corio::detail {

class Callback {
    struct Base {
        virtual ~Base() = default;
        virtual void call() = 0;
    };
    template <class F>
    struct Impl final : Base, Recycled {
        explicit Impl(F&& f) : fn(std::move(f)) {}
        void call() override { fn(); }
        F fn;
    };

public:
    Callback() = default;
    template <class F>
        requires(!std::is_same_v<std::decay_t<F>, Callback> && std::is_invocable_v<std::decay_t<F>&>)
    Callback(F&& f) : impl_(new Impl<std::decay_t<F>>(std::decay_t<F>(std::forward<F>(f)))) {}

    explicit operator bool() const noexcept { return bool(impl_); }
    void operator()() { impl_->call(); }

private:
    std::unique_ptr<Base> impl_;
};

}  // namespace corio::detail
