// A growable byte buffer with a read offset: received bytes are appended at the end without
// zero-filling, consumed from the front, and compacted only when that saves a reallocation.
// Emptied, it starts again at offset 0, and gives its memory back at the end of a fill-and-empty
// cycle that did not need more than a normal read does: once the big messages stop, the next
// small one gives their peak back, and a protocol of big messages does not reallocate for each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace corio::detail {

class ByteBuffer {
public:
    std::size_t size() const noexcept { return end_ - begin_; }
    bool empty() const noexcept { return begin_ == end_; }
    std::string_view view() const noexcept { return {data_.get() + begin_, size()}; }

    // Room for at least `n` more bytes at the end; returns where they go.
    char* prepare(std::size_t n) {
        if (cap_ - end_ >= n) return data_.get() + end_;
        std::size_t live = size();
        if (begin_ > 0 && cap_ - live >= n) {
            std::memmove(data_.get(), data_.get() + begin_, live);
        } else {
            std::size_t cap = cap_ ? cap_ : 4096;
            while (cap - live < n) cap *= 2;
            std::unique_ptr<char[]> bigger(new char[cap]);
            if (live) std::memcpy(bigger.get(), data_.get() + begin_, live);
            data_ = std::move(bigger);
            cap_ = cap;
        }
        begin_ = 0;
        end_ = live;
        return data_.get() + end_;
    }
    // The free bytes at the end, usable without a reallocation (what prepare(room()) returns).
    std::size_t room() const noexcept { return cap_ - end_; }
    char* tail() noexcept { return data_.get() + end_; }
    void commit(std::size_t n) noexcept {
        end_ += n;
        if (size() > cycle_peak_) cycle_peak_ = size();
    }
    void append(std::string_view s) {
        std::memcpy(prepare(s.size()), s.data(), s.size());
        commit(s.size());
    }
    void consume(std::size_t n) noexcept {
        begin_ += n;
        consumed_ += n;
        if (begin_ == end_ && !pinned_) restart();
    }
    // While pinned, a read into the free room is in flight (the kernel, or a backend, holds
    // tail()): consuming every byte must not move the end back to offset 0 under it.
    void pin(bool on) noexcept {
        pinned_ = on;
        if (!on && empty()) restart();
    }
    std::size_t capacity() const noexcept { return cap_; }
    // Every byte consumed from the front in the buffer's life: a search that resumes where it
    // stopped learns how far the front moved meanwhile.
    std::uint64_t consumed() const noexcept { return consumed_; }
    // What an emptied buffer keeps: asyncio's transports read up to 256 KiB at a time.
    static constexpr std::size_t kKeptCapacity = 256 * 1024;
    std::string take(std::size_t n) {
        std::string out(view().substr(0, n));
        consume(out.size());
        return out;
    }

private:
    void restart() noexcept {
        begin_ = end_ = 0;
        if (cap_ > kKeptCapacity && cycle_peak_ <= kKeptCapacity) {
            data_.reset();
            cap_ = 0;
        }
        cycle_peak_ = 0;
    }

    std::unique_ptr<char[]> data_;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    std::size_t cap_ = 0;
    std::size_t cycle_peak_ = 0;  // the most bytes held since the buffer was last empty
    std::uint64_t consumed_ = 0;
    bool pinned_ = false;
};

}  // namespace corio::detail
