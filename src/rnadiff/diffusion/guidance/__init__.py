"""RNA-aware guidance during sampling (issue 10): flat-bottom chemistry potentials applied to the
denoised prediction (rows of the restraint kernel of rnadiff.chem.restraint_energy, which the final
polish minimises too), and Feynman–Kac steering.

    guidance = RNAGuidance.from_features(featurize(structure), {"enabled": True})
    sample_diffusion(..., guidance=guidance)      # off (None) by default: unchanged sampler
"""
from rnadiff.diffusion.guidance.config import DEFAULT_TERMS, POTENTIALS, GuidanceConfig, SteeringConfig, TermSchedule
from rnadiff.diffusion.guidance.guide import GuidanceStats, RNAGuidance
from rnadiff.diffusion.guidance.polish import polish_restraints
from rnadiff.diffusion.guidance.steering import FKSteering, resample_indices
from rnadiff.diffusion.guidance.terms import GuidanceTerms, build_terms

__all__ = ["DEFAULT_TERMS", "FKSteering", "GuidanceConfig", "GuidanceStats", "GuidanceTerms", "POTENTIALS",
           "RNAGuidance", "SteeringConfig", "TermSchedule", "build_terms",
           "polish_restraints", "resample_indices"]
