// asyncio.Barrier: `parties` tasks wait until all of them have arrived, then all go on.
//
// The states and their transitions are asyncio's, built as asyncio builds them, on a
// Condition: filling (tasks arrive) -> draining (the last arrival released them; newcomers
// wait until every released task has left) -> filling. reset() breaks the current round for
// its waiters (BrokenBarrierError) and then refills; abort() breaks the barrier for good.
// A task cancelled while filling simply leaves (n_waiting() drops) and the barrier stays usable.
#pragma once

#include "corio/condition.hpp"
#include "corio/coro.hpp"

namespace corio {

class Barrier {
public:
    // Throws std::invalid_argument when parties < 1.
    explicit Barrier(int parties);
    Barrier(const Barrier&) = delete;
    Barrier& operator=(const Barrier&) = delete;

    // Returns this task's arrival index, in [0, parties). Throws BrokenBarrierError if the
    // barrier is reset or aborted while waiting, or is broken.
    Coro<int> wait();
    // Back to the empty state; current waiters get BrokenBarrierError.
    Coro<> reset();
    // Breaks the barrier: current and future waits throw BrokenBarrierError.
    Coro<> abort();

    int parties() const noexcept { return parties_; }
    // Tasks waiting for the barrier to fill (0 while draining, resetting or broken).
    int n_waiting() const noexcept { return state_ == State::Filling ? count_ : 0; }
    bool broken() const noexcept { return state_ == State::Broken; }

private:
    enum class State { Filling, Draining, Resetting, Broken };
    void leave() noexcept;

    Condition cond_;
    int parties_;
    int count_ = 0;  // tasks inside wait(), filling or draining
    State state_ = State::Filling;
};

}  // namespace corio
