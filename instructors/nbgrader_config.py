# nbgrader's configuration for a course folder of this course: copy this file into the folder you run
# nbgrader in (see the README, "Grading with nbgrader").
import atexit
import os
import shutil
import tempfile

c = get_config()  # noqa: F821  (nbgrader provides get_config when it reads this file)

c.CourseDirectory.course_id = "rnn-vision"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))

# Grade in fast mode: the checks test the exercise functions on their own inputs, which do not depend on how
# long the notebook trains, and fast mode runs notebooks 02 and 04 in well under a minute instead of minutes.
# Set COURSE_FAST=0 in the shell to grade at full length.
os.environ.setdefault("COURSE_FAST", "1")

# Seconds a cell may run (nbgrader's default is 30, less than some training cells need at full length).
c.Execute.timeout = 900

# Kernels talk over Unix sockets in a folder of this nbgrader run, not over TCP ports: a port picked as free
# can be taken by another kernel starting at the same moment, and the kernel that loses that race leaves
# nbgrader waiting until the cell times out.
_sockets = tempfile.mkdtemp(prefix="nbgrader-kernels-")
atexit.register(shutil.rmtree, _sockets, True)
c.KernelManager.transport = "ipc"
c.KernelManager.ip = os.path.join(_sockets, "kernel")
