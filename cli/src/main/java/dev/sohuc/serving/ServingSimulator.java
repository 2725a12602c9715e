package dev.sohuc.serving;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Random;
import java.util.function.IntConsumer;

/**
 * Continuous batching, step by step on the timing model: each step is at most one prefill (one
 * waiting request's whole prompt, admitted when its input + output tokens fit the KV capacity)
 * plus one decode token for every running sequence (up to {@code maxDecodeBatch}), as one step
 * program when the prompt fits the prefill chunk. Arrivals are a seeded Poisson process at
 * {@code rate} requests/s (rate 0: all requests at t = 0). A server of several data-parallel
 * replicas (each a copy of the model on its own chips, with its own KV cache) takes the arrivals
 * in turn, request i to replica i mod replicas, and each replica batches its own.
 */
public final class ServingSimulator {

  /** One request's life. */
  public static final class Request {
    public final int id;
    public final double arrival;
    public final int inputLen;
    public final int outputLen;
    public int generated;
    public double firstToken = -1;
    public double finish = -1;

    Request(int id, double arrival, int inputLen, int outputLen) {
      this.id = id;
      this.arrival = arrival;
      this.inputLen = inputLen;
      this.outputLen = outputLen;
    }
  }

  /**
   * One step: its time span, tokens and the timing of its programs. {@code prefill} is the
   * program that carries the step's prompt: the step program for a prompt of at most a chunk
   * with decodes riding along (then {@code decode} is null), the faster of it and the prefill
   * program for such a prompt alone (StepModel#promptAlone), else the prefill program, chunk by
   * chunk; {@code decode} is a step without a prompt, or the decodes beside a longer one.
   */
  public record Step(int replica, double start, double seconds, int prefillTokens,
      int decodeTokens, long decodePast, StepModel.StepTiming prefill,
      StepModel.StepTiming decode, long kvTokens) {}

  /**
   * Every request and every replica's steps (replica by replica); {@code kvCapacityTokens} and
   * {@code maxKvTokensUsed} are a replica's, the most any one used.
   */
  public record Result(List<Request> requests, List<Step> steps, double makespan,
      long kvCapacityTokens, long maxKvTokensUsed) {}

  public static Result run(StepModel model, int requests, int inputLen, int outputLen,
      double rate, long seed, int replicas, int maxDecodeBatch, long kvCapacityTokens,
      IntConsumer progress) {
    Random rnd = new Random(seed);
    List<Request> all = new ArrayList<>();
    double t = 0;
    for (int i = 0; i < requests; i++) {
      if (rate > 0) {
        t += -Math.log(1 - rnd.nextDouble()) / rate;
      }
      all.add(new Request(i, rate > 0 ? t : 0, inputLen, outputLen));
    }
    List<Step> steps = new ArrayList<>();
    double makespan = 0;
    long kvMax = 0;
    int[] done = {0};
    // a replica past the requests' count gets none
    for (int r = 0; r < Math.min(replicas, requests); r++) {
      List<Request> mine = new ArrayList<>();
      for (long i = r; i < requests; i += replicas) {
        mine.add(all.get((int) i));
      }
      Replica one = new Replica(r, model, maxDecodeBatch, kvCapacityTokens,
          () -> progress.accept(++done[0]), steps);
      makespan = Math.max(makespan, one.serve(mine));
      kvMax = Math.max(kvMax, one.kvMax);
    }
    return new Result(all, steps, makespan, kvCapacityTokens, kvMax);
  }

  /** One replica's continuous batching over its own requests, appending its steps. */
  private static final class Replica {
    final int index;
    final StepModel model;
    final int maxDecodeBatch;
    final long kvCapacityTokens;
    final Runnable finished;
    final List<Step> steps;
    long kvMax;
    long kvUsed;
    int done;

    Replica(int index, StepModel model, int maxDecodeBatch, long kvCapacityTokens,
        Runnable finished, List<Step> steps) {
      this.index = index;
      this.model = model;
      this.maxDecodeBatch = maxDecodeBatch;
      this.kvCapacityTokens = kvCapacityTokens;
      this.finished = finished;
      this.steps = steps;
    }

    /** Serves {@code all} (in arrival order) to the end; returns when the last one finished. */
    double serve(List<Request> all) {
      int requests = all.size();
      Deque<Request> waiting = new ArrayDeque<>();
      List<Request> running = new ArrayList<>();
      int next = 0;
      double now = 0;
      while (done < requests) {
        while (next < requests && all.get(next).arrival <= now) {
          waiting.add(all.get(next++));
        }
        if (waiting.isEmpty() && running.isEmpty()) {
          now = all.get(next).arrival;
          continue;
        }
        Request pre = null;
        Request head = waiting.peek();
        if (head != null && running.size() < maxDecodeBatch
            && kvUsed + head.inputLen + head.outputLen <= kvCapacityTokens) {
          pre = waiting.poll();
          kvUsed += pre.inputLen + pre.outputLen; // reserved for its whole life
        }
        if (pre == null && running.isEmpty()) {
          throw new IllegalStateException("request " + head.id + " needs "
              + (head.inputLen + head.outputLen) + " KV tokens; capacity " + kvCapacityTokens);
        }
        kvMax = Math.max(kvMax, kvUsed);
        long past = 0;
        long[] pastLengths = new long[running.size()];
        for (int i = 0; i < pastLengths.length; i++) {
          Request r = running.get(i);
          pastLengths[i] = r.inputLen + r.generated - 1L;
          past = Math.max(past, pastLengths[i]);
        }
        StepModel.StepTiming pt = null;
        StepModel.StepTiming dt = null;
        if (pre != null && pre.inputLen <= model.prefillChunk()) {
          pt = running.isEmpty() ? model.promptAlone(pre.inputLen)
              : model.step(pre.inputLen, pastLengths);
        } else {
          pt = pre == null ? null : model.prefill(pre.inputLen);
          dt = running.isEmpty() ? null : model.decode(pastLengths);
        }
        double secs = (pt == null ? 0 : pt.seconds()) + (dt == null ? 0 : dt.seconds());
        steps.add(new Step(index, now, secs, pre == null ? 0 : pre.inputLen, running.size(),
            past, pt, dt, kvUsed));
        now += secs;
        List<Request> still = new ArrayList<>();
        for (Request r : running) {
          r.generated++;
          if (r.generated == r.outputLen) {
            retire(r, now);
          } else {
            still.add(r);
          }
        }
        running = still;
        if (pre != null) {
          pre.generated = 1;
          pre.firstToken = now;
          if (pre.outputLen == 1) {
            retire(pre, now);
          } else {
            running.add(pre);
          }
        }
      }
      return now;
    }

    /** {@code r} generated its last token at {@code now}: its KV reservation is released. */
    private void retire(Request r, double now) {
      r.finish = now;
      kvUsed -= r.inputLen + r.outputLen;
      done++;
      finished.run();
    }
  }
}
