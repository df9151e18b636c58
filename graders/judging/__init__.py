"""Judges: every grade cell decided outside the learner's kernel.

Whatever runs in the learner's kernel can change what that kernel reports, so at grading time no
grade cell runs there. A judge process (``process``) runs the course's own cells and the grade
cells, with the hidden tests, taken from the instructor's source notebook; each learner's
function in it is a stand-in that asks the worker (``judge``) to call the real one in the
learner's kernel (``learner``, ``kernel_side``) and gets back plain data (``codec``). The verdict
is whether the cell's checks held in the judge, decided from that data and from what the judge
itself sees on the daemon.

Nothing is imported here: the judge's process (``python -m graders.judging.process``) loads this
package first, and needs neither the worker's side nor jupyter_client (0.15 s a submission).
"""
