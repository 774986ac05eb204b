from ._mixture import GaussianMixture as GaussianMixture
from ._teacher_student import GaussianTeacherStudent as GaussianTeacherStudent
