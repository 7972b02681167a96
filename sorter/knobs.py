"""Every tuning constant of the folder decision, in one frozen object.

Sorting, the review and the re-sort decide from one set of evidence
(:mod:`sorter.learn.evidence`) with one rule (:mod:`sorter.jobs.policy`). The numbers that rule
and its evidence depend on were chosen by measurement (``benchmarks/trust.py``,
``benchmarks/open_set.py``, ``benchmarks/correction_loop.py``; the figures are in
docs/PERFORMANCE.md), and they live here, each with why it has its value, so the decision can be
read, and tuned, in one sitting. The product always runs with :data:`DEFAULT`;
a benchmark tries another value with :func:`overridden` and nothing else changes.

Search grids (the temperatures and memory strengths a fit chooses among, the calibration table's
confidence grid) stay beside their search: they set its resolution, not its answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Knobs:
    """The decision's constants (see the module docstring)."""

    # -- is the folder like the training photos? (sorter.learn.shift) --
    neighbours: int = 10
    """Nearest training photos a photo's typicality averages over: one near-duplicate alone does
    not make a photo typical."""
    atypical: float = 0.05
    """A photo below this percentile of the validation photos' typicality is atypical; about
    this share of a folder from the training source is, by construction."""
    min_folder_photos: int = 20
    """Fewer photos than this say too little about a folder to call it shifted (and fewer
    validation photos than this cannot give percentiles)."""
    min_class_photos: int = 10
    """A class with fewer validation photos is read against all of them together."""
    shift_z: float = 3.0
    """How many standard deviations above the expected atypical share a shifted folder is."""
    shift_typical: float = 0.10
    """In a shifted folder, photos less typical than this are held back: on paintings sorted by
    a model of photos it raised the precision of the sorted photos from 79 % to 94 %, and in a
    folder from the training source it never applies."""
    atypical_floor: float = 0.998
    """An atypical photo in a shifted folder is still sorted when the model is at least this
    sure. Chosen on both shifted sets with both bodies a default training keeps (Lite0 and
    Lite1 models of photos, cold sorts of paintings and sketches): at 0.99 a Lite1 model's sorted
    sketches were 81 % right; at 0.998 each of the four is at least 94 % right."""
    probe: int = 64
    """Photos classified before the first decision of a sort: a binomial test at 64 photos flags
    16 % atypical or more, and the first copies start within seconds."""
    same_photo_cosine: float = 0.999
    """Closer than this to a reviewed photo is that photo (or a byte-for-byte copy of it)."""
    dense_margin: float = 0.05
    """In a folder whose photos all lie close together (sketches), closeness to a reviewed photo
    counts only beyond the folder's usual closeness plus this."""

    # -- "none of these" (sorter.learn.ood) --
    fit_valid_misses: float = 0.02
    """Share of the model's own validation photos allowed below the fit threshold."""
    fit_margin: float = 0.02
    """Subtracted from that quantile: a small validation set's lowest photos are a noisy estimate."""

    # -- what the user's reviews change at once (sorter.learn.adapt, sorter.learn.memory) --
    adapt: bool = True
    """Refit the head to the reviewed photos in the review and the re-sort (off only to measure
    what the memory alone does)."""
    adapt_after: int = 20
    """Reviewed photos of a shifted folder before the head is refitted to them: on paintings,
    ten reviews bent the head so that the sorted photos' precision fell from 94 % to 82 %, and
    twenty did not."""
    user_share: float = 0.25
    """The share of the loss the user's photos carry when the head is refitted (a retrain's share
    of each epoch)."""
    adapt_steps: int = 60
    """Full-batch steps of the refit (nothing random; a fraction of a second)."""
    adapt_rate: float = 0.01
    """The refit's Adam learning rate."""
    adapt_anchor: float = 1e-3
    """Pull towards the bundle's head (squared distance of the weights), so thirty photos bend the
    head rather than replace it."""
    adapt_max_valid_drop: float = 0.01
    """A refit may cost at most this much accuracy on the replay's validation rows, unless chance
    explains the cost (an exact sign test over the rows where the two heads disagree: three photos
    of 237 does not refuse a user's 60 reviews). Looser than the memory's: the refit is what moves
    photos that merely look like a corrected one."""
    memory_max_valid_drop: float = 0.005
    """A memory strength may cost at most this much accuracy on the original validation photos:
    it votes on every photo, so it must cost nearly nothing where the head is right."""
    near_duplicate_cosine: float = 0.84
    """A 10 % crop of a stored photo is this close to it."""
    near_duplicate_vote: float = 5.0
    """A stored photo's vote for a near duplicate of it is at least this (log units), so its
    crops and mirror images follow the user's label against a confident head."""
    faint_vote: float = 0.1
    """In a dense folder, a reviewed photo's vote at the folder's usual closeness plus
    :attr:`dense_margin` is at most this (log units): closeness every photo there has says
    nothing about its label."""

    # -- the calibration the reviews update (sorter.learn.recalibration, sorter.learn.calibration) --
    max_reviewed: int = 1000
    """The newest reviews that recalibrate a model (older ones speak through a retrain)."""

    # -- the precision estimated from the reviews (sorter.learn.estimate) --
    min_reviews: int = 20
    """Fewer honest reviews than this say too little: the validation tables decide, with no
    estimate. From 10 reviews, all among the least sure photos, the bound allowed no painting at
    all, where the cold rule still sorted 42 % at 95 %."""
    folds: int = 20
    """Parts the reviews are split into for honest scores (each scored by a model fitted to the
    rest; up to this many reviews, each alone). A model fitted to four fifths of the reviews is
    less sure than the re-sort's, fitted to all, so five parts made the estimate more cautious than
    the folder: over eight draws of each shifted set, twenty parts sorted more of the paintings
    and of the sketches after 30 and after 60 reviews, at 96.3 to 98.1 % right (92 % of the 50
    sketches sorted after 30 reviews, against 85 % of 27 with five; docs/PERFORMANCE.md). Each
    part refits the head: the re-sort's estimate after 60 reviews of paintings took 3.4 s, against
    0.9 s with five parts."""
    bootstrap: int = 300
    """Resamples of the reviews that tell how sure the fitted temperature is."""
    level: float = 0.8
    """The bound is one-sided at this level: the folder's precision is at least the bound 8 times in
    10. Measured on both shifted sets after 30 and 60 reviews, and after 30 straight from the
    cold sort (docs/PERFORMANCE.md, since the review's near-duplicate groups hold copies only).
    Against 0.9, 0.8 sorts more of the paintings (41.8 against 34.6 % at 30 reviews) and of the
    sketches (14.0 against 10.2 % at 60), at 97.7 to 100 % right, and what it states is within
    2.2 points. 0.5, the point estimate, sorts 54 % of the paintings but is no bound; with the
    review's old groups it stated 95 % for sketches that were 79 % right."""
    class_prior: float = 5.0
    """Each predicted class gets its own temperature, fitted to its reviews plus this many
    reviews' worth of the whole folder's (0: one temperature for the folder). With one, a few
    confident mistakes in one class (sketches of people called dogs) tempered every class, and
    the bound held back the rest. On both shifted sets with both bodies (docs/PERFORMANCE.md,
    the same reviews replayed), it sorts more of the sketches after 60 reviews (16.1 against 7.2 %
    with the default model, 16.3 against 5.3 % with Lite0) and of the paintings after 30 with the
    default model (39.9 against 32.8 %), ties elsewhere within 1.6 points, and states within
    1.2 points of what the folders turn out to be. End to end, where the reviews after the 30th
    follow each rule's course, the Lite0 paintings after 60 sort less (50.7 against 58.5 %, at
    98.3 against 96.4 % right); the default model sorts more on both sets at 30 and 60."""
    strata: int = 5
    """Confidence bands (equal shares of the folder) the reviews are weighted to: the review shows
    the least sure photos first, so each reviewed photo stands for its band's share of the folder."""
    more_steps: tuple[int, ...] = (10, 20, 30, 50, 100, 200)
    """Further reviews the hint considers ("review about 20 more")."""
    more_gain: float = 0.05
    """The hint names the fewest further reviews that would sort at least this share more."""
    systematic: int = 3
    """Confident mistakes of one class among the first reviews that make the folder's confidence
    in that class unbelievable (all seven photos a furniture model put in ``bed`` were sofas or
    chairs): until :attr:`min_reviews` can estimate the folder's precision, that class waits."""

    # -- the review's queue (sorter.jobs.review_queue) --
    diverse_first: int = 60
    """The head of the queue that is chosen for variety (k-centre over features), not only doubt."""
    spot_every: int = 4
    """One photo in this many at the head of the queue is a spot check of a confident one, so
    the reviews are not only the doubtful photos (0: none; measured in docs/PERFORMANCE.md)."""
    spot_sure: float = 0.95
    """A photo the re-score is at least this sure of is a spot check's candidate even where it is
    not sorted yet (``_unsure``): the re-sort sorts the surest photos first, so the spot checks must
    sample those, not only the cold sort's few (sketches: every spot check was one of 27 cold-sorted
    guitars and dogs, while the re-sort then sorted sketches of people as dogs)."""
    duplicate_cosine: float = 0.9
    """Photos whose difference hashes are near are one group of the review only when their
    features are at least this close too: a group is corrected as one, and sketches' hashes are
    near however different the sketches are. No sketch pair of different classes is this close;
    most copies of a photo at another size or JPEG quality are (a split copy is merely shown twice;
    measured in docs/PERFORMANCE.md)."""


DEFAULT = Knobs()
_current = DEFAULT


def knobs() -> Knobs:
    """The constants in force: :data:`DEFAULT`, except inside a benchmark's :func:`overridden`."""
    return _current


@contextmanager
def overridden(**changes: object) -> Iterator[Knobs]:
    """For benchmarks: decide with some constants changed, until the block ends."""
    global _current
    before = _current
    _current = replace(before, **changes)  # type: ignore[arg-type]
    try:
        yield _current
    finally:
        _current = before
