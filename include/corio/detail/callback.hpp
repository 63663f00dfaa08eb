// Move-only callables (std::function needs copyable targets; ours own Coros): `Callback` is
// `void()`, what the loop queues; `BasicCallback<FutureBase&>` is a done-callback that is told
// which future completed, so that it need not capture (and keep alive) that future.
#pragma once

#include <memory>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "corio/detail/frame_alloc.hpp"

namespace corio::detail {

template <class... Args>
class BasicCallback {
    struct Base {
        virtual ~Base() = default;
        virtual void call(Args... args) = 0;
        virtual const std::type_info& target_type() const noexcept = 0;
    };
    template <class F>
    struct Impl final : Base, Recycled {
        explicit Impl(F&& f) : fn(std::move(f)) {}
        void call(Args... args) override { fn(std::forward<Args>(args)...); }
        const std::type_info& target_type() const noexcept override { return typeid(F); }
        F fn;
    };

public:
    BasicCallback() = default;
    template <class F>
        requires(!std::is_same_v<std::decay_t<F>, BasicCallback> && std::is_invocable_v<std::decay_t<F>&, Args...>)
    BasicCallback(F&& f) : impl_(new Impl<std::decay_t<F>>(std::decay_t<F>(std::forward<F>(f)))) {}

    explicit operator bool() const noexcept { return bool(impl_); }
    // The callable's type (a lambda's names the function it was written in): debug mode's
    // reports name a slow callback by it, as asyncio's name the handle's function.
    const std::type_info* target_type() const noexcept { return impl_ ? &impl_->target_type() : nullptr; }
    void operator()(Args... args) { impl_->call(std::forward<Args>(args)...); }

private:
    std::unique_ptr<Base> impl_;
};

using Callback = BasicCallback<>;

}  // namespace corio::detail
