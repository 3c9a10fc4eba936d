"""acgs_trainer"""
